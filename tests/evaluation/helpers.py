"""Small models and data for the Quantus evaluation tests.

Defined in an importable module (not a test file) so that DDP spawn can pickle them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

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
