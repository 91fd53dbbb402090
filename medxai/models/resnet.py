"""ResNet-18 adapted to MedMNIST: input channels, class count and input size."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

log = logging.getLogger(__name__)

Stem = Literal["auto", "small", "imagenet"]
STEMS: tuple[str, ...] = ("auto", "small", "imagenet")


def resolve_stem(stem: str, image_size: int) -> Literal["small", "imagenet"]:
    """Pick the stem for ``image_size`` when ``stem`` is ``"auto"``.

    Inputs of 28 and 64 px get the small stem (3x3 stride-1 conv, no max-pool) so that
    ``layer4`` still has a spatial map (4x4 at 28 px) for Grad-CAM; 128 px and larger get
    torchvision's ImageNet stem (7x7 stride-2 conv and max-pool).

    Raises:
        ValueError: If ``stem`` is not one of ``auto``, ``small`` or ``imagenet``.
    """
    if stem not in STEMS:
        raise ValueError(f"Invalid stem '{stem}'. Expected one of {', '.join(STEMS)}.")
    if stem == "auto":
        return "small" if image_size < 128 else "imagenet"
    return stem  # type: ignore[return-value]


def build_resnet18(
    in_channels: int,
    num_classes: int,
    image_size: int = 28,
    stem: str = "auto",
    pretrained: bool = False,
) -> nn.Module:
    """Build torchvision's ResNet-18 for ``(N, in_channels, image_size, image_size)`` inputs.

    Args:
        in_channels: 1 (grayscale) or 3 (RGB).
        num_classes: Number of output logits.
        image_size: Side length in pixels of the images the model sees.
        stem: ``"auto"`` (by size), ``"small"`` or ``"imagenet"``; see :func:`resolve_stem`.
        pretrained: Load torchvision's ``ResNet18_Weights.IMAGENET1K_V1``. For one input
            channel the first conv kernel is the sum of the RGB kernels. With the small stem
            the pretrained 7x7 kernel is centre-cropped to 3x3. The final layer is always new.

    Returns:
        The model. Its forward maps float32 ``(N, C, H, W)`` to logits ``(N, num_classes)``.

    Raises:
        ValueError: If ``in_channels`` or ``num_classes`` is invalid.
        RuntimeError: If ``pretrained`` weights cannot be downloaded or found offline.
    """
    if in_channels not in (1, 3):
        raise ValueError(f"Invalid in_channels={in_channels}. Expected 1 (grayscale) or 3 (RGB).")
    if num_classes < 2:
        raise ValueError(f"Invalid num_classes={num_classes}. Expected at least 2.")
    chosen_stem = resolve_stem(stem, image_size)

    model = resnet18(weights=_load_imagenet_weights() if pretrained else None)
    pretrained_conv = model.conv1.weight.detach().clone()

    if chosen_stem == "small":
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
        if pretrained:
            # Keep the centre 3x3 of each pretrained 7x7 kernel.
            pretrained_conv = pretrained_conv[:, :, 2:5, 2:5]
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)

    if pretrained:
        with torch.no_grad():
            weight = pretrained_conv.sum(dim=1, keepdim=True) if in_channels == 1 else pretrained_conv
            model.conv1.weight.copy_(weight)

    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _load_imagenet_weights() -> ResNet18_Weights:
    """Return the ImageNet weights enum after making sure the file can be loaded."""
    weights = ResNet18_Weights.IMAGENET1K_V1
    try:
        weights.get_state_dict(progress=False)
    except Exception as err:  # torch.hub raises URLError, HTTPError or OSError offline.
        hub_dir = torch.hub.get_dir()
        raise RuntimeError(
            f"Cannot load ImageNet weights for ResNet-18 ({weights.url}): {err}. "
            f"torchvision caches weights in '{hub_dir}/checkpoints'. Offline, copy "
            f"'{weights.url.rsplit('/', 1)[-1]}' there, or set model.pretrained=false."
        ) from err
    return weights
