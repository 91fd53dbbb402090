"""One entry point for every attribution method: tensors in, maps out, in batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from medxai.explain.grads import attribution_mode
from medxai.explain.layers import resolve_layer
from medxai.explain.methods import get_method, validate_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explanation:
    """Maps of one method for a batch of inputs.

    Attributes:
        method: Registry name of the method.
        maps: Raw maps, float32 ``(N, 1, H, W)`` on the inputs' device. Values are returned as
            computed: a NaN or infinite value is kept, never replaced.
        convergence_delta: For ``"ig"``, ``sum(attributions) - (f(x) - f(baseline))`` per input,
            float32 ``(N,)``; ``None`` for the other methods.
    """

    method: str
    maps: Tensor
    convergence_delta: Tensor | None = None


def explain(
    model: nn.Module,
    x: Tensor,
    target: Tensor | int,
    method: str = "gradcam",
    layer: str = "layer4",
    batch_size: int | None = None,
    progress: bool = False,
    **options: Any,
) -> Tensor:
    """Compute attribution maps for ``x`` with one method.

    See :func:`explain_batched`, which takes the same arguments and also returns IG's
    convergence delta.

    Returns:
        Raw maps, float32 ``(N, 1, H, W)`` on ``x``'s device.

    Example:
        >>> maps = explain(model, x, target, method="gradcam", layer="layer4")  # doctest: +SKIP
    """
    return explain_batched(model, x, target, method, batch_size, progress, layer, **options).maps


def explain_batched(
    model: nn.Module,
    x: Tensor,
    target: Tensor | int,
    method: str = "gradcam",
    batch_size: int | None = 64,
    progress: bool = False,
    layer: str = "layer4",
    **options: Any,
) -> Explanation:
    """Compute attribution maps for ``x`` in batches of ``batch_size`` inputs.

    Each batch is one call of the method on all its inputs, never a loop over images. The
    model is switched to eval mode with gradients on (also under ``torch.inference_mode``)
    and left as it was found: same train/eval mode of each module, same ``requires_grad``
    and ``.grad`` of each parameter, no hooks added.

    Args:
        model: Any module mapping normalised float ``(N, C, H, W)`` to logits ``(N, K)`` on the
            device of ``x``, e.g. a backbone from ``build_resnet18`` or a randomised copy.
        x: Normalised inputs, float ``(N, C, H, W)``.
        target: Class to explain per input, int64 ``(N,)``, or one int for all inputs.
            Each map explains that class's logit.
        method: A key of :data:`medxai.explain.METHODS`: ``"gradcam"``, ``"gradcampp"``,
            ``"ig"``, ``"saliency"`` or ``"layercam"``.
        batch_size: Inputs per call of the method; ``None`` puts all inputs in one call. For
            ``"ig"`` with ``internal_batch_size`` set, batches are at most that size, because
            Captum needs every forward pass to hold at least one step of every input.
        progress: Show a tqdm bar over batches.
        layer: Target layer by module name relative to ``model``, for layer methods
            (Grad-CAM, Grad-CAM++, LayerCAM). Ignored by input methods (IG, Saliency).
        **options: Method options, see ``METHODS[method].defaults``. ``"ig"`` accepts
            ``n_steps`` (default 50), ``baseline`` (``"zeros"``, ``"black"``, ``"white"``,
            ``"mean"``, a float or a tensor, see :func:`medxai.explain.make_baseline`),
            ``internal_batch_size`` (scaled inputs per forward pass, default 64; ``None``
            runs all ``N * n_steps`` at once),
            ``rule`` (quadrature, default ``"gausslegendre"``) and ``preprocess`` (needed for
            the black and white baselines).

    Returns:
        The maps, float32 ``(N, 1, H, W)`` on ``x``'s device, and IG's convergence delta.

    Raises:
        ValueError: If the method, an option, the layer, ``batch_size``, or the shape, dtype or
            device of ``x`` or ``target`` is invalid. The message names what exists.
    """
    spec = get_method(method)
    resolved = validate_options(method, options)
    _check_batch_size(batch_size)
    x = _check_inputs(model, x)
    target = _check_target(target, x)
    target_layer = resolve_layer(model, layer) if spec.uses_layer else None

    count = x.shape[0]
    step = count if batch_size is None else batch_size
    if method == "ig" and resolved["internal_batch_size"] is not None:
        step = min(step, resolved["internal_batch_size"])
    step = max(step, 1)

    map_batches: list[Tensor] = []
    delta_batches: list[Tensor] = []
    trainable = [target_layer] if spec.trains_layer and target_layer is not None else []
    with attribution_mode(model, trainable=trainable):
        # Tensors made under inference mode cannot enter autograd; clones made here can.
        inputs = x.detach().clone()
        targets = target.clone()
        starts = range(0, count, step)
        for start in tqdm(starts, desc=spec.title, unit="batch", disable=not progress or len(starts) < 2):
            batch = inputs[start : start + step]
            maps, delta = spec.attribute(model, batch, targets[start : start + step], target_layer, **resolved)
            map_batches.append(maps.detach().to(torch.float32))
            if delta is not None:
                delta_batches.append(delta.detach().to(torch.float32).reshape(-1))

    if map_batches:
        all_maps = torch.cat(map_batches)
    else:
        all_maps = x.new_zeros((0, 1, *x.shape[-2:]), dtype=torch.float32)
    deltas = torch.cat(delta_batches).to(x.device) if delta_batches else None
    if method == "ig" and deltas is None:
        deltas = x.new_zeros((0,), dtype=torch.float32)
    return Explanation(method=method, maps=all_maps.to(x.device), convergence_delta=deltas)


def _check_batch_size(batch_size: int | None) -> None:
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid batch_size={batch_size!r}. Expected None or an integer >= 1.")


def _check_inputs(model: nn.Module, x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        dtype = x.dtype if isinstance(x, Tensor) else None
        raise ValueError(f"Invalid x: expected a float tensor (N, C, H, W), got {shape} of dtype {dtype}.")
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device != x.device:
        raise ValueError(
            f"Invalid x: it is on {x.device} but the model is on {parameter.device}. "
            "Move both to the same device."
        )
    return x


def _check_target(target: Tensor | int, x: Tensor) -> Tensor:
    count = x.shape[0]
    if isinstance(target, int) and not isinstance(target, bool):
        target = torch.full((count,), target, dtype=torch.int64, device=x.device)
    if not isinstance(target, Tensor) or target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"Invalid target: expected an int64 tensor of shape ({count},), got {target!r:.80}.")
    if tuple(target.shape) != (count,):
        raise ValueError(f"Invalid target shape {tuple(target.shape)}: expected ({count},), one class per input.")
    if count and int(target.min()) < 0:
        raise ValueError(f"Invalid target: class indices must be >= 0, got {int(target.min())}.")
    return target.to(device=x.device, dtype=torch.int64)
