"""Locate, download and validate MedMNIST v2 ``.npz`` files.

Loading goes through the ``medmnist`` package (its dataset classes, ``INFO`` and download).
This module adds the checks a researcher needs before trusting a file: it exists, its MD5
matches the official release, it opens, it has the six official arrays with consistent
shapes, and every label is a valid class index.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import medmnist
import numpy as np
from medmnist import INFO

log = logging.getLogger(__name__)

SIZES: tuple[int, ...] = (28, 64, 128, 224)
SPLITS: tuple[str, ...] = ("train", "val", "test")
NPZ_KEYS: tuple[str, ...] = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
DATA_ROOT_ENV = "MEDXAI_DATA_ROOT"


class DataError(ValueError):
    """A MedMNIST file or setting is invalid; the message says what to do next."""


def dataset_names() -> list[str]:
    """Return the 2D MedMNIST v2 dataset flags (``INFO`` keys without the 3D sets)."""
    return sorted(flag for flag in INFO if not flag.endswith("3d"))


def check_name(name: str) -> str:
    """Return the lower-case flag for ``name`` or raise :class:`DataError` listing valid names."""
    flag = name.lower()
    if flag not in dataset_names():
        supported = [flag for flag in dataset_names() if not INFO[flag]["task"].startswith("multi-label")]
        raise DataError(f"Unknown dataset '{name}'. Valid names: {', '.join(supported)}, synthetic.")
    if INFO[flag]["task"].startswith("multi-label"):
        raise DataError(
            f"Dataset '{flag}' is multi-label ({INFO[flag]['task']}), which medxai does not support yet. "
            "Choose a single-label dataset."
        )
    return flag


def check_size(size: int) -> int:
    """Return ``size`` if MedMNIST+ publishes files at that size, else raise :class:`DataError`."""
    if size not in SIZES:
        raise DataError(
            f"Unsupported size {size}. MedMNIST files exist at {', '.join(map(str, SIZES))} px. "
            "Set --data.size to one of them."
        )
    return size


def default_root() -> Path:
    """Return ``$MEDXAI_DATA_ROOT`` if set, else medmnist's default folder (``~/.medmnist``)."""
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else Path(medmnist.dataset.DEFAULT_ROOT).expanduser()


@dataclass(frozen=True)
class NpzFile:
    """Location and official checksum of one MedMNIST file."""

    flag: str
    size: int
    root: Path

    @property
    def filename(self) -> str:
        """File name as published, e.g. ``breastmnist.npz`` or ``breastmnist_64.npz``."""
        return f"{self.flag}.npz" if self.size == 28 else f"{self.flag}_{self.size}.npz"

    @property
    def path(self) -> Path:
        """Full path under the data root."""
        return self.root / self.filename

    @property
    def md5(self) -> str:
        """Official MD5 from ``medmnist.INFO``."""
        key = "MD5" if self.size == 28 else f"MD5_{self.size}"
        return str(INFO[self.flag][key])


def fetch(file: NpzFile, download: bool) -> None:
    """Make sure ``file`` exists, downloading it through medmnist when ``download`` is true.

    Raises:
        DataError: If the file is missing and ``download`` is false, or the download failed.
    """
    if file.root.exists() and not file.root.is_dir():
        raise DataError(
            f"Invalid --data.root: '{file.root}' is a file, not a folder. Pass the folder that contains "
            f"'{file.filename}', e.g. --data.root {file.root.parent}."
        )
    if file.path.is_file():
        return
    if not download:
        raise DataError(
            f"Data file not found: {file.path}. Put the official '{file.filename}' "
            f"(md5 {file.md5}) in the folder '{file.root}' (set with --data.root or ${DATA_ROOT_ENV}), "
            "or set --data.download=true to fetch it."
        )
    created_root = not file.root.exists()
    file.root.mkdir(parents=True, exist_ok=True)
    log.info("Downloading %s into %s", file.filename, file.root)
    dataset_class = getattr(medmnist, INFO[file.flag]["python_class"])
    try:
        dataset_class(split="test", root=str(file.root), size=file.size, download=True)
    except Exception as err:  # medmnist/torchvision raise URLError, RuntimeError or OSError.
        if created_root and not any(file.root.iterdir()):
            file.root.rmdir()  # A mistyped --data.root should not leave an empty folder behind.
        raise DataError(
            f"Download of '{file.filename}' failed ({_root_cause(err)}). Without network access, "
            f"copy the official file (md5 {file.md5}) into '{file.root}', or point --data.root (or "
            f"${DATA_ROOT_ENV}) at a folder that has it, and set --data.download=false."
        ) from err


def _root_cause(err: BaseException) -> str:
    """Format the innermost exception as ``"TypeName: first line"``.

    medmnist replaces the network error with several lines of manual download steps, so the
    innermost cause is the part that names the network error.
    """
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def verify_md5(file: NpzFile) -> None:
    """Compare the file's MD5 with the official one.

    Raises:
        DataError: On a mismatch, with both checksums and the fix.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(file.path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != file.md5:
        raise DataError(
            f"MD5 mismatch for {file.path}: got {actual}, expected the official {file.md5}. "
            "Delete the file and download it again (--data.download=true), or set "
            "--data.check_md5=false to use a modified or synthetic file on purpose."
        )


def load_arrays(path: Path, num_classes: int, channels: int, size: int) -> dict[str, np.ndarray]:
    """Open an npz file without pickle and validate the six official arrays.

    Args:
        path: The ``.npz`` file.
        num_classes: Number of classes; every label must lie in ``[0, num_classes)``.
        channels: 1 for ``(N, H, W)`` images, 3 for ``(N, H, W, 3)``.
        size: Expected height and width in pixels.

    Returns:
        A dict with ``{split}_images`` uint8 ``(N, H, W[, 3])`` and ``{split}_labels`` int64 ``(N,)``.

    Raises:
        DataError: If the file is corrupt, misses keys, or has wrong shapes, dtypes or labels.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in NPZ_KEYS if key not in npz.files]
            if missing:
                raise DataError(
                    f"{path} is missing the arrays {', '.join(missing)} (found: {', '.join(npz.files)}). "
                    f"A MedMNIST file has {', '.join(NPZ_KEYS)}; download the official file again."
                )
            arrays = {key: npz[key] for key in NPZ_KEYS}
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise DataError(
            f"Cannot read {path}: the file is corrupt or truncated ({err}). Delete it and download it again."
        ) from err

    expected = (size, size) if channels == 1 else (size, size, 3)
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.shape[1:] != expected:
            raise DataError(
                f"{path}: {split}_images has dtype {images.dtype} and shape {images.shape}, "
                f"expected uint8 (N, {', '.join(map(str, expected))}). Check the file, --data.size and the dataset name."
            )
        labels = labels.reshape(len(labels), -1)
        if labels.shape != (len(images), 1):
            raise DataError(
                f"{path}: {split}_labels has shape {arrays[f'{split}_labels'].shape}, expected ({len(images)}, 1)."
            )
        labels = labels[:, 0].astype(np.int64)
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.size:
            raise DataError(
                f"{path}: {split}_labels contains {bad.size} value(s) outside 0..{num_classes - 1} "
                f"(first: {int(bad[0])}). The file does not match a {num_classes}-class dataset."
            )
        arrays[f"{split}_labels"] = labels
    return arrays
