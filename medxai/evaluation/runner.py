"""Run the Quantus metrics for every attribution method and keep every per-sample score.

:func:`run_suite` is the functional core of the Quantus evaluation: numpy or tensors in,
per-sample scores and a record of what failed out. It is usable from a notebook and is what
``callbacks.quantus_eval.QuantusCallback`` calls on the test split.

How a run goes:

1. Each method explains the samples once; metrics that accept precomputed maps (``a_batch``)
   reuse them. Metrics that need new maps (sensitivity, randomisation, Focus) call the method's
   ``explain_func`` themselves. MaxSensitivity reuses the perturbations and maps of
   AvgSensitivity when both run with the same parameters.
2. For each metric (one log line each), each method is scored with a fresh Quantus instance.
   Global random generators (``random``, numpy, torch) are reseeded with ``seed`` before every
   (metric, method) call, so all methods see the same random perturbations (a paired design)
   and two runs with the same seed on the same machine give identical scores.
3. A metric that raises, returns the wrong number of scores, or returns NaN or infinity is
   recorded in :attr:`SuiteResult.failures` with the reason, and the run continues. Scores are
   never replaced: a raising cell has no scores, a NaN sample stays NaN.

The model is put in eval mode for the run, because Quantus rejects a model in training mode,
and set back afterwards. The global random states are restored on exit.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import quantus
import torch
from torch import nn

from medxai.evaluation.mosaic import FocusMosaics
from medxai.evaluation.suite import (
    METRIC_NAMES,
    REQUIRES_MASKS,
    REQUIRES_MOSAICS,
    InputGeometry,
    MetricSpec,
    allowed_parameters,
    build_metric,
    get_spec,
    resolve_parameters,
    validate_metric_names,
    validate_overrides,
)

log = logging.getLogger(__name__)

#: Signature Quantus expects: (model, inputs (N, C, H, W), targets (N,), **kwargs) -> maps (N, 1, H, W).
ExplainFunc = Callable[..., np.ndarray]

#: Name used in failures when a method could not compute its maps at all.
EXPLANATION = "explanation"
AVG_SENSITIVITY = "AvgSensitivity"
MAX_SENSITIVITY = "MaxSensitivity"


@dataclass(frozen=True)
class Failure:
    """A metric (or a method's explanation) that did not give a finite score for every sample.

    Attributes:
        method: Attribution method name.
        metric: Metric name, or ``"explanation"`` when the method's maps failed.
        reason: What went wrong: the exception type and message, or how many scores were NaN.
        n_failed: Number of samples without a finite score.
        n_total: Number of samples evaluated.
    """

    method: str
    metric: str
    reason: str
    n_failed: int
    n_total: int

    def as_dict(self) -> dict[str, Any]:
        """Return the failure as a JSON-ready dict."""
        return {
            "method": self.method,
            "metric": self.metric,
            "reason": self.reason,
            "n_failed": self.n_failed,
            "n_total": self.n_total,
        }


@dataclass
class SuiteResult:
    """Per-sample scores of a suite run and what failed or was skipped.

    Attributes:
        scores: ``{method: {metric: float64 (N,)}}``. A (method, metric) cell that raised is
            absent; a sample whose score is undefined is NaN.
        failures: Failed (method, metric) cells and method explanations, with reasons.
        skipped: ``{metric: reason}`` for metrics that could not run on this data (e.g. no masks).
        metrics: ``{metric: info}`` with ``property``, ``direction`` (reported),
            ``quantus_direction``, ``params``, ``call_params``, ``reference`` and ``note``.
        seconds: ``{metric or "explanation": {method: wall-clock seconds}}``.
    """

    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def metric_info(self) -> dict[str, dict[str, str]]:
        """Return ``{metric: {"property", "direction"}}`` for the metrics that ran, for :mod:`stats`."""
        return {
            name: {"property": info["property"], "direction": info["direction"]}
            for name, info in self.metrics.items()
            if name not in self.skipped
        }


def run_suite(
    model: nn.Module,
    inputs: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    explain_funcs: Mapping[str, ExplainFunc],
    metrics: Sequence[str] | None = None,
    *,
    num_classes: int,
    masks: np.ndarray | torch.Tensor | None = None,
    mosaics: FocusMosaics | None = None,
    metric_params: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> SuiteResult:
    """Score every method with every metric on the same samples.

    Args:
        model: Classifier mapping float ``(N, C, H, W)`` to logits ``(N, num_classes)``.
        inputs: float ``(N, C, H, W)`` in the model's input space (preprocessed, normalised).
        targets: int ``(N,)`` class explained per sample.
        explain_funcs: ``{method name: explain_func}``; each is called as Quantus calls it, e.g.
            :class:`medxai.evaluation.QuantusExplainFunc`.
        metrics: Registry names (see :data:`medxai.evaluation.suite.METRIC_NAMES`); None runs all.
        num_classes: Number of classes (used by RandomLogit).
        masks: Optional bool ``(N, 1, H, W)`` or ``(N, H, W)`` ground-truth masks for the
            localisation metrics that need them; without masks those metrics are skipped.
        mosaics: Optional Focus mosaics (one per sample); without them Focus is skipped.
        metric_params: ``{metric: {parameter: value}}`` overriding the registry defaults.
        seed: Seed for every random draw of the run.
        batch_size: Samples per Quantus batch (and so per ``explain_func`` call).
        progress: Log one INFO line per metric and per (metric, method) cell. Warnings about
            failures are logged either way.

    Returns:
        Per-sample scores, failures with reasons, skipped metrics and timings.

    Raises:
        ValueError: If a metric name or parameter is unknown, ``explain_funcs`` is empty,
            ``batch_size`` < 1, or the shapes of ``inputs``, ``targets``, ``masks`` disagree.
    """
    names = validate_metric_names(list(METRIC_NAMES) if metrics is None else list(metrics))
    overrides = validate_overrides(metric_params)
    if not explain_funcs:
        raise ValueError("Invalid explain_funcs={}. Expected at least one method.")
    if batch_size < 1:
        raise ValueError(f"Invalid batch_size={batch_size}. Expected an integer >= 1.")
    x = _as_numpy(inputs, np.float32)
    y = _as_numpy(targets, np.int64).reshape(-1)
    s = _check_masks(masks, x)
    if x.ndim != 4 or y.shape[0] != x.shape[0]:
        raise ValueError(f"Invalid inputs/targets: expected (N, C, H, W) and (N,), got {x.shape} and {y.shape}.")

    geometry = InputGeometry(image_size=int(x.shape[-1]), channels=int(x.shape[1]), num_classes=num_classes)
    parameter = next(model.parameters(), None)
    run = _SuiteRun(
        model=model,
        x=x,
        y=y,
        masks=s,
        mosaics=mosaics,
        explain_funcs=explain_funcs,
        seed=seed,
        batch_size=batch_size,
        device=str(parameter.device) if parameter is not None else None,
        result=SuiteResult(scores={method: {} for method in explain_funcs}),
        progress=progress,
    )
    resolved = {name: _parameters(get_spec(name), geometry, overrides.get(name), seed) for name in names}
    run.share_max_sensitivity = _shares_sensitivity_perturbations(resolved)

    # Lightning's test loop runs under inference mode; MPRT deep-copies and re-initialises the
    # model and the methods need autograd, which inference tensors would break.
    with torch.inference_mode(False), _eval_mode(model), _preserved_rng_states():
        run.explain_all()
        for position, name in enumerate(names, start=1):
            log_prefix = f"Quantus {position}/{len(names)}: {name}"
            run.run_metric(get_spec(name), *resolved[name], log_prefix)
    return run.result


def merge_results(parts: Sequence[tuple[np.ndarray, SuiteResult | None]], total: int) -> SuiteResult:
    """Merge the results of several shards (e.g. DDP ranks) into one, in subset order.

    Args:
        parts: ``(positions, result)`` per shard: the positions (int ``(n,)``) of the shard's
            samples in the whole subset, and its result (None for a shard without samples).
        total: Number of samples in the whole subset.

    Returns:
        One result. A (method, metric) cell present on some shards only gets NaN at the
        positions of the other shards, and those shards' failures explain why. Failures of the
        same (method, metric) are combined: failed counts are summed, distinct reasons joined and
        ``n_total`` set to ``total``.
        ``seconds`` keeps the slowest shard per cell, the wall-clock time of a parallel run.
    """
    merged = SuiteResult()
    failures: dict[tuple[str, str], list[Failure]] = {}
    for positions, part in parts:
        if part is None:
            continue
        index = np.asarray(positions, dtype=np.int64)
        for method, per_metric in part.scores.items():
            method_scores = merged.scores.setdefault(method, {})
            for metric, values in per_metric.items():
                column = method_scores.setdefault(metric, np.full(total, np.nan))
                column[index] = values
        for failure in part.failures:
            failures.setdefault((failure.method, failure.metric), []).append(failure)
        merged.skipped.update(part.skipped)
        for name, info in part.metrics.items():
            merged.metrics.setdefault(name, info)
        for name, per_method in part.seconds.items():
            for method, seconds in per_method.items():
                previous = merged.seconds.setdefault(name, {}).get(method, 0.0)
                merged.seconds[name][method] = max(previous, seconds)

    for (method, metric), group in failures.items():
        reasons = list(dict.fromkeys(failure.reason for failure in group))
        merged.failures.append(
            Failure(
                method=method,
                metric=metric,
                reason="; ".join(reasons),
                n_failed=sum(failure.n_failed for failure in group),
                n_total=total,
            )
        )
    return merged


@dataclass
class _SuiteRun:
    """State of one :func:`run_suite` call: data, precomputed maps and the growing result."""

    model: nn.Module
    x: np.ndarray
    y: np.ndarray
    masks: np.ndarray | None
    mosaics: FocusMosaics | None
    explain_funcs: Mapping[str, ExplainFunc]
    seed: int
    batch_size: int
    device: str | None
    result: SuiteResult
    progress: bool = True
    share_max_sensitivity: bool = False
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    # MaxSensitivity outcomes computed during the AvgSensitivity pass, per method.
    pending_max: dict[str, np.ndarray | Exception] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(self.x.shape[0])

    def info(self, message: str, *args: Any) -> None:
        if self.progress:
            log.info(message, *args)

    def explain_all(self) -> None:
        """Compute each method's maps once; a method that raises is recorded and left out."""
        for method, explain_func in self.explain_funcs.items():
            _seed_everything(self.seed)
            started = time.perf_counter()
            try:
                maps = np.asarray(explain_func(model=self.model, inputs=self.x, targets=self.y), dtype=np.float32)
            except Exception as err:  # noqa: BLE001 - one failing method is recorded and the run continues
                reason = f"{type(err).__name__}: {err}"
                log.warning("Explanation with %s failed: %s", method, reason)
                self.result.failures.append(Failure(method, EXPLANATION, reason, self.total, self.total))
                continue
            self.result.seconds.setdefault(EXPLANATION, {})[method] = time.perf_counter() - started

            bad = int((~np.isfinite(maps)).reshape(maps.shape[0], -1).any(axis=1).sum())
            if bad:
                reason = f"{bad} of {self.total} maps contain NaN or infinite values"
                log.warning("Explanation with %s: %s", method, reason)
                self.result.failures.append(Failure(method, EXPLANATION, reason, bad, self.total))
            self.maps[method] = maps

    def run_metric(
        self, spec: MetricSpec, init_params: dict[str, Any], call_params: dict[str, Any], log_prefix: str
    ) -> None:
        """Score every method with one metric, or record why the metric was skipped."""
        self.result.metrics[spec.name] = _metric_record(spec, init_params, call_params)
        reason = _skip_reason(spec, self.masks, self.mosaics, self.total)
        if reason is not None:
            self.result.skipped[spec.name] = reason
            self.info("%s skipped: %s", log_prefix, reason)
            return
        if spec.name == MAX_SENSITIVITY and self.share_max_sensitivity and self.pending_max:
            self.result.metrics[spec.name]["computed_with"] = AVG_SENSITIVITY
            self.info("%s from the %s perturbations", log_prefix, AVG_SENSITIVITY)
            for method, outcome in self.pending_max.items():
                self.store(spec, method, outcome)
                self.result.seconds.setdefault(spec.name, {})[method] = 0.0
            return

        self.info("%s (%s) on %d samples", log_prefix, spec.property_name, self.total)
        for method in self.maps:
            started = time.perf_counter()
            outcome = self.score(spec, method, init_params, call_params)
            self.result.seconds.setdefault(spec.name, {})[method] = time.perf_counter() - started
            self.store(spec, method, outcome)

    def store(self, spec: MetricSpec, method: str, outcome: np.ndarray | Exception) -> None:
        """Store one (metric, method) outcome: its scores, and a failure if it raised or has NaN scores."""
        if isinstance(outcome, Exception):
            reason = f"{type(outcome).__name__}: {outcome}".strip()
            log.warning("%s / %s failed: %s", spec.name, method, reason)
            self.result.failures.append(Failure(method, spec.name, reason, self.total, self.total))
            return

        self.result.scores[method][spec.name] = outcome
        bad = ~np.isfinite(outcome)
        if bad.any():
            reason = f"returned NaN or infinite scores for {int(bad.sum())} of {self.total} samples"
            reason += self._zero_map_hint(spec, method, bad)
            log.warning("%s / %s %s", spec.name, method, reason)
            self.result.failures.append(Failure(method, spec.name, reason, int(bad.sum()), self.total))
        if self.progress:
            finite_scores = outcome[~bad]
            mean = float(finite_scores.mean()) if finite_scores.size else float("nan")
            log.info("  %s / %s: mean %.4f over %d samples", spec.name, method, mean, finite_scores.size)

    def _zero_map_hint(self, spec: MetricSpec, method: str, bad: np.ndarray) -> str:
        """Say how many of the failed samples have an all-zero map, a common cause of NaN scores."""
        if REQUIRES_MOSAICS in spec.requires or method not in self.maps:
            return ""
        maps = self.maps[method].reshape(self.total, -1)
        zero = int((np.all(maps == 0, axis=1) & bad).sum())
        return f" ({zero} of them have an all-zero {method} map)" if zero else ""

    def score(
        self, spec: MetricSpec, method: str, init_params: dict[str, Any], call_params: dict[str, Any]
    ) -> np.ndarray | Exception:
        """Score one method with one metric; return the per-sample scores or the exception raised."""
        _seed_everything(self.seed)
        recorder = None
        try:
            metric = build_metric(spec, init_params)
            if spec.name == AVG_SENSITIVITY and self.share_max_sensitivity:
                recorder = _record_similarities(metric, init_params)
            raw = metric(
                model=self.model,
                **_metric_data(spec, self.x, self.y, self.maps[method], self.masks, self.mosaics),
                explain_func=self.explain_funcs[method],
                device=self.device,
                batch_size=self.batch_size,
                **call_params,
            )
            outcome: np.ndarray | Exception = per_sample_scores(spec, raw, self.total)
        except Exception as err:  # noqa: BLE001 - one failing metric is recorded and the rest still run
            outcome = err
        if recorder is not None:
            self.pending_max[method] = outcome if isinstance(outcome, Exception) else recorder.maximum()
        return outcome


class _SimilarityRecorder:
    """Wrapper of AvgSensitivity's per-sample reduction to keep the (N, nr_samples) sensitivity matrix.

    Quantus 0.6.0's AvgSensitivity and MaxSensitivity run the same loop (same random noise for
    the same seed, same explanations) and differ only in the last step: ``mean_func`` (nan-mean)
    against ``max_func`` (nan-max) over the perturbations. Keeping the matrix gives MaxSensitivity
    from the same perturbations at no extra cost, instead of explaining every perturbed input twice.
    """

    def __init__(self, reduce: Callable[..., np.ndarray], nan_aware: bool) -> None:
        self.reduce = reduce
        self.nan_aware = nan_aware
        self.batches: list[np.ndarray] = []

    def __call__(self, similarities: np.ndarray, axis: int = 1) -> np.ndarray:
        self.batches.append(np.array(similarities, dtype=np.float64, copy=True))
        return self.reduce(similarities, axis=axis)

    def maximum(self) -> np.ndarray:
        matrix = np.concatenate(self.batches, axis=0)
        if self.nan_aware:
            # A row of NaN (every perturbation changed the prediction) stays NaN, as in Quantus.
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanmax(matrix, axis=1)
        return np.max(matrix, axis=1)


def _record_similarities(metric: Any, init_params: Mapping[str, Any]) -> _SimilarityRecorder:
    """Install a :class:`_SimilarityRecorder` on an AvgSensitivity instance and return it."""
    recorder = _SimilarityRecorder(
        metric.mean_func, nan_aware=not init_params.get("return_nan_when_prediction_changes", False)
    )
    metric.mean_func = recorder
    return recorder


def _shares_sensitivity_perturbations(resolved: Mapping[str, tuple[dict[str, Any], dict[str, Any]]]) -> bool:
    """Check whether MaxSensitivity can reuse AvgSensitivity's perturbations (equal parameters)."""
    if AVG_SENSITIVITY not in resolved or MAX_SENSITIVITY not in resolved:
        return False
    if not hasattr(quantus.AvgSensitivity(disable_warnings=True), "mean_func"):
        # NOTE: relies on the attribute name in Quantus 0.6.0; other versions run both metrics.
        return False
    return _comparable(resolved[AVG_SENSITIVITY]) == _comparable(resolved[MAX_SENSITIVITY])


def _comparable(params: tuple[dict[str, Any], dict[str, Any]]) -> tuple[str, str]:
    return repr(sorted(params[0].items())), repr(sorted(params[1].items()))


def per_sample_scores(spec: MetricSpec, raw: Any, total: int) -> np.ndarray:
    """Turn a Quantus return value into one float64 score per sample.

    Args:
        spec: The metric's registry entry.
        raw: What the Quantus metric returned: a list of floats, or for ``summary="aopc"`` one
            perturbation curve ``f(x) - f(x_k)`` (k = 1..L) per sample.
        total: Expected number of samples.

    Returns:
        float64 ``(total,)``. For AOPC: ``sum_k curve_k / (L + 1)``, the ``k = 0`` term being 0.

    Raises:
        ValueError: If the number of scores or the curve shape is not as expected.
    """
    if spec.summary == "aopc":
        curves = np.asarray(raw, dtype=np.float64)
        if curves.ndim != 2 or curves.shape[0] != total:
            raise ValueError(f"{spec.name} returned curves of shape {curves.shape}; expected ({total}, L).")
        return curves.sum(axis=1) / (curves.shape[1] + 1)
    scores = np.asarray(raw, dtype=np.float64).reshape(-1)
    if scores.shape[0] != total:
        raise ValueError(f"{spec.name} returned {scores.shape[0]} scores for {total} samples.")
    return scores


def _parameters(
    spec: MetricSpec, geometry: InputGeometry, overrides: Mapping[str, Any] | None, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resolve a metric's parameters; metrics with their own ``seed`` get the suite's unless overridden."""
    init_params, call_params = resolve_parameters(spec, geometry, overrides)
    if "seed" in allowed_parameters(spec) and "seed" not in (overrides or {}):
        init_params["seed"] = seed
    return init_params, call_params


def _metric_record(spec: MetricSpec, init_params: Mapping[str, Any], call_params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "property": spec.property_name,
        "direction": spec.direction(init_params).value,
        "quantus_direction": spec.quantus_direction.value,
        "quantus_class": f"quantus.{spec.metric_class.__name__}",
        "summary": spec.summary or "per-sample score",
        "params": {key: _describe_value(value) for key, value in init_params.items()},
        "call_params": dict(call_params),
        "reference": spec.reference,
        "note": spec.note,
    }


def _describe_value(value: Any) -> Any:
    """Make a parameter value JSON-friendly: callables by qualified name, tuples as lists."""
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, Mapping):
        return {str(key): _describe_value(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_describe_value(item) for item in value]
    return value


def _skip_reason(spec: MetricSpec, masks: np.ndarray | None, mosaics: FocusMosaics | None, total: int) -> str | None:
    if REQUIRES_MASKS in spec.requires and masks is None:
        return "needs ground-truth masks, and this dataset has none (the synthetic dataset has them)"
    if REQUIRES_MOSAICS in spec.requires:
        if mosaics is None:
            return "needs Focus mosaics, and none were given"
        if len(mosaics) != total:
            return f"needs one mosaic per sample, got {len(mosaics)} mosaics for {total} samples"
    return None


def _metric_data(
    spec: MetricSpec,
    x: np.ndarray,
    y: np.ndarray,
    maps: np.ndarray,
    masks: np.ndarray | None,
    mosaics: FocusMosaics | None,
) -> dict[str, Any]:
    """Build the Quantus call arguments: inputs, targets, precomputed maps, masks or mosaics."""
    if REQUIRES_MOSAICS in spec.requires and mosaics is not None:
        # Maps of the mosaics are computed by Quantus through explain_func.
        return {
            "x_batch": mosaics.images,
            "y_batch": mosaics.targets,
            "a_batch": None,
            "custom_batch": mosaics.positions,
        }
    data: dict[str, Any] = {"x_batch": x, "y_batch": y, "a_batch": maps.copy()}
    if REQUIRES_MASKS in spec.requires:
        data["s_batch"] = masks
    return data


def _check_masks(masks: np.ndarray | torch.Tensor | None, x: np.ndarray) -> np.ndarray | None:
    if masks is None:
        return None
    s = _as_numpy(masks, np.uint8)
    if s.ndim == 3:
        s = s[:, None]
    if s.ndim != 4 or s.shape[0] != x.shape[0] or s.shape[1] != 1 or s.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"Invalid masks with shape {s.shape}: expected (N, 1, H, W) or (N, H, W) matching inputs {x.shape}."
        )
    return s


def _as_numpy(array: np.ndarray | torch.Tensor, dtype: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(array).astype(dtype, copy=False))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.train(training)


@contextlib.contextmanager
def _preserved_rng_states() -> Iterator[None]:
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
