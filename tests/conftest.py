"""Shared fixtures: tiny synthetic MedMNIST files and the real files from ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from medmnist import INFO

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_ROOT = Path(os.environ.get("MEDXAI_DATA_ROOT", REPO_ROOT.parent / "shared" / "data" / "medmnist"))


def write_fake_npz(
    path: Path,
    flag: str,
    counts: tuple[int, int, int] = (24, 12, 12),
    size: int = 28,
    seed: int = 0,
) -> Path:
    """Write a small npz in the official MedMNIST format for ``flag``.

    Images are uint8 ``(N, size, size)`` for grayscale sets and ``(N, size, size, 3)`` for RGB;
    labels uint8 ``(N, 1)`` cycle through every class. Each class gets a brighter square at a
    class-specific place, so a model can learn it in a few steps.
    """
    info = INFO[flag]
    num_classes = len(info["label"])
    channels = int(info["n_channels"])
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), counts):
        labels = (np.arange(count) % num_classes).astype(np.uint8)
        shape = (count, size, size) if channels == 1 else (count, size, size, 3)
        images = rng.integers(0, 90, size=shape, dtype=np.uint8)
        cell = size // 4
        for index, label in enumerate(labels):
            row, col = divmod(int(label) % 16, 4)
            images[index, row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = 230
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A data root with small synthetic bloodmnist, retinamnist and breastmnist files."""
    root = tmp_path / "data"
    for seed, flag in enumerate(("bloodmnist", "retinamnist", "breastmnist")):
        write_fake_npz(root / f"{flag}.npz", flag, seed=seed)
    return root


@pytest.fixture
def real_root() -> Path:
    """The folder with the official npz files; skipped locally if absent, an error under CI."""
    if not (REAL_DATA_ROOT / "breastmnist.npz").is_file():
        message = f"official MedMNIST files not found in {REAL_DATA_ROOT} (set MEDXAI_DATA_ROOT)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REAL_DATA_ROOT
