"""Small models and data for the Quantus evaluation tests.

Defined in an importable module (not a test file) so that DDP spawn can pickle them.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medxai.data.synthetic import make_known_signal

MEAN = 0.33
STD = 0.12


class TinyNet(nn.Module):
    """A two-block CNN with a ``layer4`` for Grad-CAM; (N, C, H, W) -> logits (N, num_classes)."""

    def __init__(self, channels: int = 1, num_classes: int = 2, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.layer1 = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer4 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layer4(self.layer1(x))), 1))


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, 3) -> float32 (N, C, H, W) standardised with MEAN and STD."""
    x = images.astype(np.float32) / 255.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return ((x - MEAN) / STD).astype(np.float32)


def synthetic_test_batch(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return normalised test inputs (N, 1, 28, 28), labels (N,) and masks (N, 1, 28, 28)."""
    arrays = make_known_signal(0, 0, count, seed=seed)
    labels = arrays["test_labels"][:, 0].astype(np.int64)
    return normalise(arrays["test_images"]), labels, arrays["test_masks"][:, None]


class SyntheticDataModule(pl.LightningDataModule):
    """The known-signal data behind the datamodule members that QuantusCallback reads.

    Args:
        counts: Train, val and test sizes.
        masks: Return the test masks from ``test_masks()``; False mimics MedMNIST (no masks).
    """

    def __init__(self, counts: tuple[int, int, int] = (16, 8, 12), masks: bool = True) -> None:
        super().__init__()
        arrays = make_known_signal(*counts, seed=0)
        self.dataset_name = "synthetic"
        self.num_classes = 2
        self.in_channels = 1
        self.image_size = 28
        self.class_names = ["diagonal cross", "plus"]
        self._splits = {
            split: (
                torch.from_numpy(arrays[f"{split}_images"]).unsqueeze(1),
                torch.from_numpy(arrays[f"{split}_labels"][:, 0].astype(np.int64)),
            )
            for split in ("train", "val", "test")
        }
        self._masks = torch.from_numpy(arrays["test_masks"]).unsqueeze(1) if masks else None

    def split_arrays(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._splits[split]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - MEAN) / STD

    def test_masks(self) -> torch.Tensor | None:
        return self._masks

    def _loader(self, split: str) -> DataLoader:
        images, labels = self._splits[split]
        return DataLoader(TensorDataset(self.preprocess(images), labels), batch_size=8)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class TinyModule(pl.LightningModule):
    """LightningModule holding a :class:`TinyNet` as ``self.model``, as medxai's classifier does."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.model = TinyNet(seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)
