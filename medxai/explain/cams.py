"""pytorch-grad-cam CAM classes that return raw layer maps, for batched use.

pytorch-grad-cam (``grad-cam`` 1.5) min-max scales every map to [0, 1] and resizes it with
OpenCV before returning it. medxai returns raw maps and upsamples all layer methods the same
way (bilinear, ``torch.nn.functional.interpolate``), so these subclasses keep the library's
channel weights and hooks but skip its scaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAMPlusPlus, LayerCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn


class _RawCamMixin:
    """Replace BaseCAM's per-map scaling with the ReLU'd, unscaled layer map.

    NOTE: overrides ``compute_cam_per_layer`` and ``aggregate_multi_layers`` of grad-cam 1.5.x.
    The agreement test against the library's public output guards against changes there.
    """

    activations_and_grads: Any
    target_layers: list[nn.Module]
    get_cam_image: Any

    def compute_cam_per_layer(
        self, input_tensor: Tensor, targets: list[Any], eigen_smooth: bool
    ) -> list[np.ndarray]:
        activations = [a.cpu().numpy() for a in self.activations_and_grads.activations]
        grads = [g.cpu().numpy() for g in self.activations_and_grads.gradients]
        cams = []
        for layer, layer_activations, layer_grads in zip(self.target_layers, activations, grads):
            cam = self.get_cam_image(input_tensor, layer, targets, layer_activations, layer_grads, eigen_smooth)
            cams.append(np.maximum(cam, 0))
        return cams

    def aggregate_multi_layers(self, cam_per_target_layer: list[np.ndarray]) -> np.ndarray:
        return np.mean(np.stack(cam_per_target_layer, axis=1), axis=1)


class RawGradCAMPlusPlus(_RawCamMixin, GradCAMPlusPlus):
    """pytorch-grad-cam's Grad-CAM++ returning ReLU'd maps at the layer's resolution."""


class RawLayerCAM(_RawCamMixin, LayerCAM):
    """pytorch-grad-cam's LayerCAM returning ReLU'd maps at the layer's resolution."""


def run_raw_cam(cam_class: type[BaseCAM], model: nn.Module, layer: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Compute a pytorch-grad-cam map for each input and upsample it bilinearly to the input size.

    ``layer``'s output must require grad: pytorch-grad-cam only records gradients of outputs
    that do (see ``attribution_mode(trainable=...)``).

    Args:
        cam_class: :class:`RawGradCAMPlusPlus` or :class:`RawLayerCAM`.
        model: Module mapping ``x`` to logits ``(N, K)``.
        layer: The target layer, a submodule of ``model``.
        x: Inputs, float ``(N, C, H, W)``.
        target: Class index per input, int64 ``(N,)``; the map explains that logit.

    Returns:
        Float32 maps ``(N, 1, H, W)`` on ``x``'s device, non-negative and unscaled.
    """
    cam = cam_class(model=model, target_layers=[layer])
    try:
        targets = [ClassifierOutputTarget(int(index)) for index in target.tolist()]
        layer_maps = cam(input_tensor=x, targets=targets)
    finally:
        # Removes the library's forward hooks even when the backward pass failed.
        cam.activations_and_grads.release()

    # (N, h, w) numpy -> (N, 1, h, w) tensor, then up to (N, 1, H, W).
    maps = torch.from_numpy(np.ascontiguousarray(layer_maps, dtype=np.float32)).unsqueeze(1).to(x.device)
    return F.interpolate(maps, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
