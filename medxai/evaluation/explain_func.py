"""The ``explain_func`` adapter that Quantus calls, backed by :func:`medxai.explain.explain`.

Quantus calls ``explain_func(model=..., inputs=..., targets=..., **explain_func_kwargs)`` with
numpy arrays and expects numpy maps back. Several metrics call it on other models than the one
being evaluated: MPRT passes randomised deep copies, so the adapter builds the explainer from
the ``model`` argument on every call and never caches one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from medxai.explain import explain, get_method, validate_options


class QuantusExplainFunc:
    """Callable ``explain_func`` for Quantus that computes one medxai attribution method.

    Args:
        method: A key of ``medxai.explain.METHODS`` (``"gradcam"``, ``"gradcampp"``, ``"ig"``,
            ``"saliency"``, ...).
        layer: Target layer by module name relative to the model, for layer methods.
        batch_size: Inputs per call of the method inside one Quantus call; ``None`` explains
            everything Quantus passes at once.
        options: Method options (e.g. ``{"n_steps": 16}`` for IG), checked at construction.

    Raises:
        ValueError: If ``method`` or an option is invalid (raised by ``medxai.explain``).

    Example:
        >>> func = QuantusExplainFunc("gradcam")  # doctest: +SKIP
        >>> maps = func(model, inputs, targets)  # numpy float32 (N, 1, H, W)  # doctest: +SKIP
    """

    def __init__(
        self,
        method: str,
        layer: str = "layer4",
        batch_size: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        get_method(method)
        validate_options(method, dict(options or {}))
        self.method = method
        self.layer = layer
        self.batch_size = batch_size
        self.options = dict(options or {})

    def __call__(self, model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Explain ``inputs`` with ``model`` for the classes in ``targets``.

        Args:
            model: The model Quantus passes: the evaluated one or a randomised copy.
            inputs: float ``(N, C, H, W)``, channel first, in the model's input space.
            targets: int ``(N,)`` class to explain per input.
            **kwargs: Quantus's ``explain_func_kwargs``. ``device`` (added by Quantus when a device
                is given) is ignored because inputs go to the model's device; any other key is
                passed to the method as an option.

        Returns:
            float32 ``(N, 1, H, W)`` raw maps; a non-finite value is returned as computed.
        """
        kwargs.pop("device", None)
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")

        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=device)
        target = torch.as_tensor(np.asarray(targets).astype(np.int64).reshape(-1), device=device)
        maps = explain(
            model,
            x,
            target,
            method=self.method,
            layer=self.layer,
            batch_size=self.batch_size,
            **{**self.options, **kwargs},
        )
        return maps.detach().cpu().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"QuantusExplainFunc(method={self.method!r}, layer={self.layer!r}, options={self.options!r})"
