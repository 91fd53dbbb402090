"""A tiny datamodule and classifier that follow medxai's datamodule and module contracts.

They let the explanation tests run a real Trainer without the MedMNIST files. Defined in an
importable module (not a test file) so that DDP spawn can pickle them.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from medxai.models import build_resnet18

MEAN = 0.4
STD = 0.25


def make_split(count: int, channels: int, num_classes: int, size: int = 28, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Return uint8 images ``(count, channels, size, size)`` and int64 labels ``(count,)``.

    Labels cycle through the classes; each class has a bright square at its own place on a
    dark noisy background, so a model learns it in a few steps.
    """
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 90, (count, channels, size, size), generator=generator, dtype=torch.uint8)
    labels = torch.arange(count) % num_classes
    cell = size // 4
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label % 16, 4)
        images[index, :, row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = 230
    return images, labels.to(torch.int64)


class TinyDataModule(pl.LightningDataModule):
    """Synthetic data with the members the explanation callback reads."""

    def __init__(self, channels: int = 1, num_classes: int = 2, counts: tuple[int, int, int] = (16, 8, 12)) -> None:
        super().__init__()
        self.dataset_name = "tinymnist"
        self.num_classes = num_classes
        self.in_channels = channels
        self.task = "binary-class" if num_classes == 2 else "multi-class"
        self.class_names = [f"class {index}" for index in range(num_classes)]
        self.image_size = 28
        self._splits = {
            split: make_split(count, channels, num_classes, seed=seed)
            for seed, (split, count) in enumerate(zip(("train", "val", "test"), counts))
        }

    def split_arrays(self, split: str) -> tuple[Tensor, Tensor]:
        return self._splits[split]

    def preprocess(self, images: Tensor) -> Tensor:
        return (self.to_display(images) - MEAN) / STD

    def to_display(self, images: Tensor) -> Tensor:
        return images.float() / 255.0

    def test_masks(self) -> Tensor | None:
        return None

    def _loader(self, split: str) -> DataLoader:
        images, labels = self._splits[split]
        return DataLoader(TensorDataset(self.preprocess(images), labels), batch_size=8, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class TinyClassifier(pl.LightningModule):
    """ResNet-18 classifier holding its backbone as ``self.model``, as medxai's module does."""

    def __init__(self, channels: int = 1, num_classes: int = 2, model: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model if model is not None else build_resnet18(channels, num_classes)
        self.training_steps = 0

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        self.training_steps += 1
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class NaNForNegativeCorner(nn.Module):
    """Wrap a backbone so that inputs whose top-left pixel is negative get NaN input gradients.

    ``0 * sqrt(v)`` adds 0 for ``v > 0``; for ``v < 0`` it makes the logits NaN and, through
    ``0 / (2 * sqrt(v))`` in the backward pass, the gradient with respect to the input NaN.
    Layer gradients (Grad-CAM) stay finite because the term does not depend on any layer.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        corner = x[:, 0, 0, 0]
        return self.backbone(x) + 0.0 * torch.sqrt(corner).unsqueeze(1)
