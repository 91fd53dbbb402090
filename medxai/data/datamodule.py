"""LightningDataModule for the 2D MedMNIST v2 datasets on their official splits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from medmnist import INFO
from torch import Tensor
from torch.utils.data import DataLoader

from medxai.checkpoints import collect_rng_states, restore_rng_states
from medxai.data import sources
from medxai.data.batched import BatchedTensorDataset, collate_batched
from medxai.data.transforms import Augmentation, normalize, to_float

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"


class MedMNISTDataModule(pl.LightningDataModule):
    """One MedMNIST v2 2D dataset, held in memory as uint8 tensors.

    Images are stored as uint8 ``(N, C, H, W)`` at file size. Each batch is converted to
    float32, resized to ``image_size``, augmented (train only) and standardised with the train
    split's channel mean and std on the batch's device, in :meth:`on_after_batch_transfer`.

    Args:
        dataset: MedMNIST flag such as ``bloodmnist``, ``retinamnist`` or ``breastmnist``, or
            ``synthetic`` for the built-in known-signal dataset with localisation masks.
        root: Folder with the ``.npz`` files. Default: ``$MEDXAI_DATA_ROOT``, else ``~/.medmnist``.
        size: File size in pixels: 28, 64, 128 or 224 (the MedMNIST+ files).
        resize: Side length the model sees, e.g. 224 for 28 px files. ``None`` keeps ``size``.
        download: Fetch a missing file through medmnist.
        check_md5: Compare the file with its official MD5 (turn off for custom files).
        batch_size: Training batch size.
        eval_batch_size: Batch size for validation, test and predict. ``None`` uses ``batch_size``.
        num_workers: DataLoader worker processes. 0 suits in-memory tensors.
        augmentation: Train-time augmentation; see :class:`Augmentation`.
        synthetic_samples: Train, val and test sample counts for ``dataset: synthetic``.

    Raises:
        DataError: For an unknown dataset name or unsupported size, with the valid values.
    """

    def __init__(
        self,
        dataset: str = "breastmnist",
        root: str | None = None,
        size: int = 28,
        resize: int | None = None,
        download: bool = False,
        check_md5: bool = True,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        augmentation: Augmentation | None = None,
        synthetic_samples: tuple[int, int, int] = (1200, 200, 400),
    ) -> None:
        super().__init__()
        self.dataset_name = SYNTHETIC if dataset.lower() == SYNTHETIC else sources.check_name(dataset)
        self.size = sources.check_size(size)
        if resize is not None and resize < 8:
            raise ValueError(f"Invalid resize={resize}. Expected an image side of at least 8 px, or null.")
        if batch_size < 1:
            raise ValueError(f"Invalid batch_size={batch_size}. Expected a positive integer.")
        if num_workers < 0:
            raise ValueError(f"Invalid num_workers={num_workers}. Expected 0 or more.")
        self.root = Path(root).expanduser() if root else sources.default_root()
        self.resize = resize
        self.download = download
        self.check_md5 = check_md5
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.augmentation = augmentation or Augmentation()
        self.synthetic_samples = tuple(synthetic_samples)
        self.save_hyperparameters(ignore=["augmentation"])

        self.info: dict[str, Any] = self._load_info()
        self._tensors: dict[str, tuple[Tensor, Tensor]] = {}
        self._masks: Tensor | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    # Metadata known before any file is read.

    @property
    def num_classes(self) -> int:
        """Number of classes, from ``INFO[flag]["label"]``."""
        return len(self.info["label"])

    @property
    def in_channels(self) -> int:
        """1 for grayscale or 3 for RGB, from ``INFO[flag]["n_channels"]``."""
        return int(self.info["n_channels"])

    @property
    def task(self) -> str:
        """medmnist task string, e.g. ``binary-class``, ``multi-class`` or ``ordinal-regression``."""
        return str(self.info["task"])

    @property
    def class_names(self) -> list[str]:
        """Class names in label order."""
        return [str(self.info["label"][str(index)]) for index in range(self.num_classes)]

    @property
    def image_size(self) -> int:
        """Side length in pixels of the images the model sees."""
        return self.resize or self.size

    # Loading.

    def prepare_data(self) -> None:
        """Download the file if requested (runs on one process per node)."""
        if self.dataset_name != SYNTHETIC:
            sources.fetch(self._npz_file(), self.download)

    def check_data(self) -> None:
        """Load and validate the splits now, so that bad data stops a run before it writes files.

        A missing file that ``download`` will fetch is left to :meth:`prepare_data`, which
        Lightning runs on one process per node.
        """
        if self.dataset_name != SYNTHETIC and self.download and not self._npz_file().path.is_file():
            return
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Load and validate all three splits once; compute the train split's channel statistics."""
        if self._tensors:
            return
        arrays = self._read_arrays()
        for split in sources.SPLITS:
            images = torch.from_numpy(np.ascontiguousarray(arrays[f"{split}_images"]))
            images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
            labels = torch.from_numpy(np.asarray(arrays[f"{split}_labels"], dtype=np.int64).reshape(-1))
            self._tensors[split] = (images, labels)
        if "test_masks" in arrays:
            self._masks = torch.from_numpy(arrays["test_masks"]).bool().unsqueeze(1)

        train = to_float(self._tensors["train"][0], self.size)
        self.mean = train.mean(dim=(0, 2, 3))
        self.std = train.std(dim=(0, 2, 3)).clamp_min(1e-3)
        counts = ", ".join(f"{split} {len(self._tensors[split][1])}" for split in sources.SPLITS)
        log.info("Loaded %s at %d px (%s samples)", self.dataset_name, self.size, counts)

    def split_arrays(self, split: str) -> tuple[Tensor, Tensor]:
        """Return one split as stored.

        Args:
            split: ``train``, ``val`` or ``test``.

        Returns:
            Images uint8 ``(N, C, H, W)`` at file size and labels int64 ``(N,)``.
        """
        if split not in sources.SPLITS:
            raise ValueError(f"Invalid split '{split}'. Expected one of {', '.join(sources.SPLITS)}.")
        self.setup()
        return self._tensors[split]

    def test_masks(self) -> Tensor | None:
        """Return bool ``(N, 1, H, W)`` localisation masks of the test split, or ``None`` (MedMNIST has none)."""
        self.setup()
        return self._masks

    @property
    def class_counts(self) -> list[int]:
        """Number of train samples per class."""
        labels = self.split_arrays("train")[1]
        return torch.bincount(labels, minlength=self.num_classes).tolist()

    # Batch transforms.

    def preprocess(self, images: Tensor) -> Tensor:
        """Turn uint8 images into model inputs without augmentation.

        Args:
            images: uint8 ``(N, C, H, W)`` at file size, on any device.

        Returns:
            float32 ``(N, C, image_size, image_size)``, standardised with the train statistics.
        """
        self.setup()
        assert self.mean is not None and self.std is not None  # set by setup()
        return normalize(to_float(images, self.image_size), self.mean, self.std)

    def to_display(self, images: Tensor) -> Tensor:
        """Return float32 ``(N, C, image_size, image_size)`` images in [0, 1] for plots."""
        return to_float(images, self.image_size)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Convert, augment (train only) and standardise a batch on its device."""
        images, labels = batch
        x = to_float(images, self.image_size)
        trainer = self.trainer
        if trainer is not None and trainer.training and self.augmentation.enabled:
            x = self.augmentation(x)
        assert self.mean is not None and self.std is not None  # set by setup()
        return normalize(x, self.mean, self.std), labels

    # DataLoaders.

    def train_dataloader(self) -> DataLoader:
        """Shuffled train batches; the last incomplete batch is dropped (BatchNorm needs > 1 sample)."""
        dataset = BatchedTensorDataset(*self.split_arrays("train"))
        drop_last = len(dataset) > self.batch_size
        return self._loader(dataset, self.batch_size, shuffle=True, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in file order."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches in file order; under DDP every sample is seen exactly once."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Test-split batches for ``medxai predict``."""
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = BatchedTensorDataset(*self.split_arrays(split))
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Lightning's default DistributedSampler pads the split so every rank gets the same
            # count, which would count some samples twice in the test metrics.
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return self._loader(dataset, self.eval_batch_size, shuffle=False, drop_last=False, sampler=sampler)

    def _loader(
        self, dataset: BatchedTensorDataset, batch_size: int, shuffle: bool, drop_last: bool, sampler: Any = None
    ) -> DataLoader:
        # Each batch is one gather per tensor (see BatchedTensorDataset), not a per-sample
        # read and stack. The sampler stays a plain argument so Lightning can replace it under DDP.
        return DataLoader(
            dataset,
            batch_size=batch_size,
            collate_fn=collate_batched,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    # Checkpoint state: the normalisation statistics and the random number generator states.

    def state_dict(self) -> dict[str, Any]:
        """Return the train-split channel statistics and the global RNG states.

        The RNG states decide the shuffling order and the augmentation of the next epoch, so
        a fit resumed from ``last.ckpt`` continues as the uninterrupted run would have.
        Under DDP the checkpoint contains rank zero's states, which every rank restores.
        """
        return {"mean": self.mean, "std": self.std, "rng_states": collect_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved; the RNG states only when resuming a fit.

        The statistics are recomputed anyway in :meth:`setup`.
        """
        self.mean, self.std = state_dict.get("mean"), state_dict.get("std")
        fitting = self.trainer is not None and self.trainer.state.fn == "fit"
        if fitting and "rng_states" in state_dict:
            restore_rng_states(state_dict["rng_states"])

    # Internals.

    def _load_info(self) -> dict[str, Any]:
        if self.dataset_name == SYNTHETIC:
            from medxai.data.synthetic import SYNTHETIC_INFO

            return dict(SYNTHETIC_INFO)
        return dict(INFO[self.dataset_name])

    def _npz_file(self) -> sources.NpzFile:
        return sources.NpzFile(self.dataset_name, self.size, self.root)

    def _read_arrays(self) -> dict[str, np.ndarray]:
        if self.dataset_name == SYNTHETIC:
            from medxai.data.synthetic import make_known_signal

            num_train, num_val, num_test = self.synthetic_samples
            return make_known_signal(num_train, num_val, num_test, size=self.size, seed=0)
        file = self._npz_file()
        sources.fetch(file, self.download)
        if self.check_md5:
            sources.verify_md5(file)
        return sources.load_arrays(file.path, self.num_classes, self.in_channels, self.size)
