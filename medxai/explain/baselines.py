"""Baselines (reference inputs) for Integrated Gradients."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: Baseline names accepted by :func:`make_baseline`.
BASELINES: tuple[str, ...] = ("zeros", "black", "white", "mean")

Preprocess = Callable[[Tensor], Tensor]


def make_baseline(
    baseline: str | float | Tensor,
    x: Tensor,
    preprocess: Preprocess | None = None,
) -> Tensor:
    """Build the IG baseline for the normalised inputs ``x``.

    Args:
        baseline: One of

            * ``"zeros"``: an all-zero input. After per-channel standardisation with dataset
              statistics this is the dataset's mean colour.
            * ``"black"`` / ``"white"``: uint8 pixels 0 / 255 passed through ``preprocess``,
              i.e. a black or white image in the model's input space. Needs ``preprocess``.
            * ``"mean"``: each image's own per-channel spatial mean, a flat image of its
              average colour.
            * a float: a constant input of that value (in normalised units).
            * a tensor broadcastable to ``x``: used as given.
        x: Normalised inputs, float ``(N, C, H, W)``.
        preprocess: Maps uint8 ``(N, C, h, w)`` images to normalised float
            ``(N, C, H, W)``, e.g. the datamodule's ``preprocess``. Used for black and white.

    Returns:
        Baseline with the shape, dtype and device of ``x``.

    Raises:
        ValueError: If ``baseline`` is an unknown name, ``"black"``/``"white"`` is asked for
            without ``preprocess``, or a tensor baseline does not broadcast to ``x``.
    """
    if isinstance(baseline, Tensor):
        try:
            return torch.broadcast_to(baseline.to(device=x.device, dtype=x.dtype), x.shape).clone()
        except RuntimeError as err:
            raise ValueError(
                f"Invalid baseline tensor of shape {tuple(baseline.shape)}: it does not "
                f"broadcast to the inputs' shape {tuple(x.shape)}."
            ) from err
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if baseline == "zeros":
        return torch.zeros_like(x)
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if baseline in ("black", "white"):
        if preprocess is None:
            raise ValueError(
                f"baseline='{baseline}' needs preprocess, the function that maps uint8 images "
                "to the model's normalised inputs (e.g. datamodule.preprocess); or pass the "
                "baseline as a tensor."
            )
        value = 0 if baseline == "black" else 255
        pixels = torch.full((1, x.shape[1], x.shape[2], x.shape[3]), value, dtype=torch.uint8, device=x.device)
        return make_baseline(preprocess(pixels), x)
    raise ValueError(
        f"Invalid baseline={baseline!r}. Expected one of {', '.join(BASELINES)}, a float or a tensor."
    )
