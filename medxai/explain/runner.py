"""Explain a set of uint8 images with several methods and collect maps, predictions and failures.

This is the tensor-level work of the explanation callback, kept free of Lightning so that it can
run in a notebook and be tested directly. A method that raises, or a map with NaN or infinite
values, is recorded as failed for the affected images with the reason. The other methods and
images still complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from medxai.explain.api import explain_batched
from medxai.explain.methods import get_method

log = logging.getLogger(__name__)

#: Choices of the class each map explains: the model's prediction or the true label.
TARGET_MODES: tuple[str, ...] = ("predicted", "true")


@dataclass
class SubsetResult:
    """Everything computed for a set of images, as numpy arrays so that it pickles cheaply.

    Attributes:
        positions: Position of each image in the full subset, int64 ``(n,)``; used to put
            the shards of several DDP ranks back in order.
        indices: Index of each image in the test split, int64 ``(n,)``.
        labels: True class, int64 ``(n,)``.
        predictions: Predicted class (argmax of the logits), int64 ``(n,)``.
        probabilities: Softmax probability of the predicted class, float32 ``(n,)``.
        targets: Class each map explains, int64 ``(n,)``.
        maps: Method name -> raw maps, float32 ``(n, H, W)``; NaN where the method raised.
        deltas: Method name -> IG convergence delta, float32 ``(n,)``; NaN where it raised.
        failures: Method name -> per image ``None`` (ok) or the reason it failed.
        seconds: Method name -> wall-clock seconds spent on this set of images.
    """

    positions: np.ndarray
    indices: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    targets: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    deltas: dict[str, np.ndarray] = field(default_factory=dict)
    failures: dict[str, list[str | None]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def explain_images(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    preprocess: Callable[[Tensor], Tensor],
    methods: Sequence[str],
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    layer: str = "layer4",
    target: str = "predicted",
    batch_size: int = 64,
    progress: bool = False,
    positions: Tensor | None = None,
    indices: Tensor | None = None,
    device: torch.device | str | None = None,
    report: Callable[[str], None] = log.info,
) -> SubsetResult:
    """Predict and explain ``images`` with each of ``methods``, batch by batch.

    Args:
        model: Module mapping normalised float ``(N, C, H, W)`` to logits ``(N, K)``.
        images: uint8 ``(n, C, h, w)`` as stored in the split.
        labels: True class per image, int64 ``(n,)``.
        preprocess: uint8 ``(B, C, h, w)`` -> normalised float32 ``(B, C, H, W)`` on the same
            device, e.g. the datamodule's ``preprocess``.
        methods: Keys of :data:`medxai.explain.METHODS`, run in this order.
        method_options: Method name -> options for :func:`medxai.explain.explain_batched`.
        layer: Target layer name for layer methods.
        target: ``"predicted"`` or ``"true"``: the class each map explains.
        batch_size: Images per batch.
        progress: Show a tqdm bar over the batches of each method.
        positions: Position of each image in the full subset; defaults to ``0 .. n-1``.
        indices: Index of each image in the split; defaults to ``positions``.
        device: Where to compute; defaults to the model's device.
        report: Receives one progress line before and after each method.

    Returns:
        Predictions, maps, IG deltas and per-image failures.

    Raises:
        ValueError: If ``target`` or a method name is invalid.
    """
    if target not in TARGET_MODES:
        raise ValueError(f"Invalid target={target!r}. Expected one of {', '.join(TARGET_MODES)}.")
    for name in methods:
        get_method(name)
    method_options = method_options or {}
    if device is None:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")

    count = images.shape[0]
    positions = torch.arange(count) if positions is None else positions
    indices = positions if indices is None else indices
    labels = labels.reshape(-1).to(torch.int64)

    if count:
        probabilities = torch.softmax(_predict(model, images, preprocess, batch_size, device), dim=1)
        predictions = probabilities.argmax(dim=1)
        confidence = probabilities.max(dim=1).values
    else:  # A DDP rank can get no images when the subset is smaller than the world size.
        predictions = torch.zeros(0, dtype=torch.int64)
        confidence = torch.zeros(0)
    targets = predictions if target == "predicted" else labels.cpu()

    result = SubsetResult(
        positions=positions.cpu().numpy().astype(np.int64),
        indices=indices.cpu().numpy().astype(np.int64),
        labels=labels.cpu().numpy(),
        predictions=predictions.cpu().numpy().astype(np.int64),
        probabilities=confidence.numpy().astype(np.float32),
        targets=targets.cpu().numpy().astype(np.int64),
    )
    for name in methods:
        title = get_method(name).title
        report(f"{title}: explaining {count} images in batches of {batch_size}")
        _run_method(model, images, targets, preprocess, name, dict(method_options.get(name, {})),
                    layer, batch_size, progress, device, result)
        failed = sum(reason is not None for reason in result.failures[name])
        report(f"{title}: done in {result.seconds[name]:.1f} s, {count - failed} ok, {failed} failed")
    return result


def merge_results(parts: Sequence[SubsetResult]) -> SubsetResult:
    """Concatenate the results of several ranks and sort them by subset position.

    Parts without images are skipped (unless all are empty), since their maps may have another
    shape than those computed.
    """
    non_empty = [part for part in parts if part.positions.size]
    parts = non_empty or list(parts[:1])
    order = np.argsort(np.concatenate([part.positions for part in parts]), kind="stable")

    def joined(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays)[order]

    method_names = list(dict.fromkeys(name for part in parts for name in part.failures))
    failures = {}
    for name in method_names:
        flat = [reason for part in parts for reason in part.failures[name]]
        failures[name] = [flat[i] for i in order]
    return SubsetResult(
        positions=joined([part.positions for part in parts]),
        indices=joined([part.indices for part in parts]),
        labels=joined([part.labels for part in parts]),
        predictions=joined([part.predictions for part in parts]),
        probabilities=joined([part.probabilities for part in parts]),
        targets=joined([part.targets for part in parts]),
        maps={name: joined([part.maps[name] for part in parts]) for name in method_names},
        deltas={
            name: joined([part.deltas[name] for part in parts])
            for name in method_names
            if all(name in part.deltas for part in parts)
        },
        failures=failures,
        # Ranks run in parallel, so the slowest one is the wall-clock time.
        seconds={name: max(part.seconds.get(name, 0.0) for part in parts) for name in method_names},
    )


def describe_non_finite(attribution: np.ndarray) -> str | None:
    """Return why a map is invalid (counts of NaN and infinite values), or ``None`` if finite."""
    nan_count = int(np.isnan(attribution).sum())
    inf_count = int(np.isinf(attribution).sum())
    if nan_count == 0 and inf_count == 0:
        return None
    return f"map has {nan_count} NaN and {inf_count} infinite values of {attribution.size}"


def _predict(
    model: nn.Module, images: Tensor, preprocess: Callable[[Tensor], Tensor], batch_size: int, device: Any
) -> Tensor:
    """Return logits ``(n, K)`` on the CPU, computed in eval mode; the mode is restored."""
    training_flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            chunks = [
                model(preprocess(images[start : start + batch_size].to(device))).float().cpu()
                for start in range(0, images.shape[0], batch_size)
            ]
    finally:
        for module, flag in training_flags:
            module.training = flag
    return torch.cat(chunks)


def _run_method(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    preprocess: Callable[[Tensor], Tensor],
    name: str,
    options: dict[str, Any],
    layer: str,
    batch_size: int,
    progress: bool,
    device: Any,
    result: SubsetResult,
) -> None:
    """Explain all images with one method and store maps and failures in ``result``."""
    count = images.shape[0]
    method = get_method(name)
    height, width = _input_size(preprocess, images, device)
    maps = np.full((count, height, width), np.nan, dtype=np.float32)
    deltas = np.full((count,), np.nan, dtype=np.float32)
    failures: list[str | None] = [None] * count

    started = time.perf_counter()
    starts = range(0, count, batch_size)
    for start in tqdm(starts, desc=method.title, unit="batch", disable=not progress or len(starts) < 2):
        stop = min(start + batch_size, count)
        try:
            x = preprocess(images[start:stop].to(device))
            explanation = explain_batched(
                model, x, targets[start:stop].to(device), name, batch_size=None, layer=layer, **options
            )
        except Exception as err:  # One failing method or batch must not stop the others.
            reason = f"{type(err).__name__}: {err}"
            log.warning("%s failed on images %d-%d: %s", method.title, start, stop - 1, reason)
            failures[start:stop] = [reason] * (stop - start)
            continue
        maps[start:stop] = explanation.maps[:, 0].cpu().numpy()
        if explanation.convergence_delta is not None:
            deltas[start:stop] = explanation.convergence_delta.cpu().numpy()

    for position in range(count):
        if failures[position] is None:
            failures[position] = describe_non_finite(maps[position])
    result.seconds[name] = time.perf_counter() - started
    result.maps[name] = maps
    result.failures[name] = failures
    if method.name == "ig":
        result.deltas[name] = deltas


def _input_size(preprocess: Callable[[Tensor], Tensor], images: Tensor, device: Any) -> tuple[int, int]:
    """Return the (H, W) that ``preprocess`` gives the images."""
    if images.shape[0] == 0:
        return int(images.shape[-2]), int(images.shape[-1])
    with torch.inference_mode():
        shape = preprocess(images[:1].to(device)).shape
    return int(shape[-2]), int(shape[-1])
