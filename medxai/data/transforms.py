"""Batch-wise image transforms that run on the batch's device.

Images stay uint8 in memory; conversion to float, resizing, normalisation and augmentation
happen once per batch in ``LightningDataModule.on_after_batch_transfer``, which is much
faster than per-sample PIL transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def to_float(images: Tensor, image_size: int) -> Tensor:
    """Convert uint8 images to float32 in [0, 1] and resize them.

    Args:
        images: uint8 ``(N, C, H, W)``.
        image_size: Output height and width in pixels.

    Returns:
        float32 ``(N, C, image_size, image_size)`` in [0, 1]; bilinear with antialiasing when
        the size changes.
    """
    out = images.float().div_(255.0)
    if out.shape[-1] != image_size or out.shape[-2] != image_size:
        out = F.interpolate(out, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        out = out.clamp_(0.0, 1.0)
    return out


def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Standardise float images per channel.

    Args:
        images: float32 ``(N, C, H, W)`` in [0, 1].
        mean: ``(C,)`` channel means of the train split.
        std: ``(C,)`` channel standard deviations of the train split.

    Returns:
        float32 ``(N, C, H, W)``.
    """
    mean = mean.to(images.device, images.dtype).view(1, -1, 1, 1)
    std = std.to(images.device, images.dtype).view(1, -1, 1, 1)
    return (images - mean) / std


@dataclass(frozen=True)
class Augmentation:
    """Random train-time augmentation applied per sample inside a batch.

    Attributes:
        hflip: Probability of a horizontal flip.
        vflip: Probability of a vertical flip.
        degrees: Maximum absolute rotation in degrees.
        translate: Maximum shift as a fraction of the image side.
        scale: Maximum relative zoom, e.g. 0.1 samples factors in [0.9, 1.1].
        brightness: Maximum relative brightness change.
        contrast: Maximum relative contrast change.
        saturation: Maximum relative saturation change (RGB only).
    """

    hflip: float = 0.0
    vflip: float = 0.0
    degrees: float = 0.0
    translate: float = 0.0
    scale: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Invalid augmentation {name}={value}. Expected a probability in [0, 1].")
        for name in ("degrees", "translate", "scale", "brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"Invalid augmentation {name}={value}. Expected a value >= 0.")

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is switched on."""
        return any(getattr(self, name) > 0 for name in self.__dataclass_fields__)

    def __call__(self, images: Tensor) -> Tensor:
        """Augment float images in [0, 1].

        Args:
            images: float32 ``(N, C, H, W)`` in [0, 1].

        Returns:
            float32 ``(N, C, H, W)`` in [0, 1]. Uses the global torch RNG, so runs are seeded
            by ``seed_everything``.
        """
        if not self.enabled:
            return images
        n = images.shape[0]
        device = images.device

        if self.hflip > 0:
            flip = torch.rand(n, device=device) < self.hflip
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        if self.vflip > 0:
            flip = torch.rand(n, device=device) < self.vflip
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-2), images)
        if self.degrees > 0 or self.translate > 0 or self.scale > 0:
            images = self._affine(images)
        if self.brightness > 0 or self.contrast > 0 or self.saturation > 0:
            images = self._color(images)
        return images.clamp(0.0, 1.0)

    def _affine(self, images: Tensor) -> Tensor:
        n, device = images.shape[0], images.device
        angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(self.degrees)
        zoom = 1 + (torch.rand(n, device=device) * 2 - 1) * self.scale
        shift = (torch.rand(n, 2, device=device) * 2 - 1) * self.translate * 2  # grid spans [-1, 1]
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # One 2x3 sampling matrix per image: (N, 2, 3).
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _color(self, images: Tensor) -> Tensor:
        n, device = images.shape[0], images.device
        if self.brightness > 0:
            factor = 1 + (torch.rand(n, 1, 1, 1, device=device) * 2 - 1) * self.brightness
            images = images * factor
        if self.contrast > 0:
            factor = 1 + (torch.rand(n, 1, 1, 1, device=device) * 2 - 1) * self.contrast
            mean = images.mean(dim=(1, 2, 3), keepdim=True)
            images = (images - mean) * factor + mean
        if self.saturation > 0 and images.shape[1] == 3:
            factor = 1 + (torch.rand(n, 1, 1, 1, device=device) * 2 - 1) * self.saturation
            gray = images.mean(dim=1, keepdim=True)
            images = (images - gray) * factor + gray
        return images
