"""Fixtures for the explanation tests: small ResNet-18 backbones and normalised batches."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from medxai.models import build_resnet18
from tests.explain.helpers import MEAN, STD, make_split


def _backbone(channels: int, num_classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_resnet18(channels, num_classes)
    # Random running statistics, so BatchNorm in eval mode is not the identity.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def gray_model() -> nn.Module:
    """A 1-channel, 2-class ResNet-18 (BreastMNIST-like) in eval mode."""
    return _backbone(1, 2, seed=0)


@pytest.fixture(scope="module")
def rgb_model() -> nn.Module:
    """A 3-channel, 5-class ResNet-18 (RetinaMNIST-like) in eval mode."""
    return _backbone(3, 5, seed=1)


def normalised_batch(count: int, channels: int, num_classes: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Return normalised float32 inputs ``(count, channels, 28, 28)`` and int64 labels."""
    images, labels = make_split(count, channels, num_classes, seed=seed)
    return (images.float() / 255.0 - MEAN) / STD, labels


@pytest.fixture
def gray_batch() -> tuple[Tensor, Tensor]:
    return normalised_batch(4, 1, 2)


@pytest.fixture
def rgb_batch() -> tuple[Tensor, Tensor]:
    return normalised_batch(4, 3, 5)
