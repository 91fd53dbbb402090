"""Reader for ``explanations/explanations.json``, tolerant to the names of its keys.

Expected content, per sample: its test index, true label, predicted label, probability, and per
method the written PNG path(s) and a status with the reason of a failure. Top-level ``settings``,
``class_names`` and a ``methods`` mapping of per-method facts (paper, time, counts) are shown when
present. The samples may be a top-level list or the ``samples`` list of an object. Per sample,
the methods may be a mapping from method name to result or a list of results that name their
method. Each key may have one of several spellings (``true_label``/``label``/``target``,
``predicted_label``/``prediction``/``pred``, ...). A result given as a bare string is taken as
the path of a successful map.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medxai.report import run_files

_SAMPLE_LIST_KEYS = ("samples", "items", "records", "explanations")
_INDEX_KEYS = ("index", "test_index", "idx", "sample_index", "sample", "id")
_TRUE_KEYS = ("true_label", "label", "target", "y_true", "true", "true_class", "label_true")
_PRED_KEYS = ("predicted_label", "prediction", "pred", "y_pred", "predicted", "predicted_class", "pred_label")
_EXPLAINED_KEYS = ("explained_label", "target_label", "explained_class")
_PROB_KEYS = ("probability", "prob", "confidence", "predicted_probability", "score")
_METHODS_KEYS = ("methods", "explanations", "attributions", "results", "maps")
_METHOD_NAME_KEYS = ("method", "name")
_REASON_KEYS = ("reason", "error", "message", "failure", "detail")
_OK_STATUSES = frozenset({"ok", "success", "succeeded", "done", "completed", "passed", "finished"})


@dataclass
class MethodResult:
    """One method's outcome on one sample.

    Attributes:
        method: Method name as written in the file.
        ok: True when the map was computed, False when the file records a failure.
        status: Status text from the file, or "ok"/"failed" when the file has none.
        reason: Reason of a failure, or None.
        images: PNG files that exist for this result, in file order.
        missing_images: PNG paths named in the file that do not exist.
        numbers: Other finite numeric fields of the result (for example an IG convergence delta).
    """

    method: str
    ok: bool
    status: str
    reason: str | None = None
    images: list[Path] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)


@dataclass
class ExplainedSample:
    """One explained test image and its results per method.

    ``explained_label`` is the class the maps explain; it differs from the prediction when the
    explanation targets the true class.
    """

    index: object
    true_label: object
    predicted_label: object
    probability: float | None
    results: dict[str, MethodResult]
    correct_flag: bool | None = None
    true_name: str | None = None
    predicted_name: str | None = None
    explained_label: object = None

    @property
    def correct(self) -> bool | None:
        """Whether the prediction matches the true label, or None when either is unknown."""
        if self.correct_flag is not None:
            return self.correct_flag
        if self.true_label is None or self.predicted_label is None:
            return None
        return str(self.true_label) == str(self.predicted_label)


@dataclass
class ExplanationRecord:
    """Content of explanations.json.

    Attributes:
        methods: Method names in display order.
        samples: Explained samples in file order.
        settings: The ``settings`` object, or else the other top-level scalar entries (target,
            layer, subset, ...), shown as given.
        extra_failures: Failures listed at the top level rather than per sample, as dicts.
        method_facts: Per method, the facts of a top-level ``methods`` mapping (title, paper,
            seconds, counts), or an empty dict.
        class_names: Top-level ``class_names``, or None.
    """

    methods: list[str]
    samples: list[ExplainedSample]
    settings: dict[str, object]
    extra_failures: list[dict[str, object]]
    method_facts: dict[str, dict[str, object]] = field(default_factory=dict)
    class_names: list[str] | None = None

    def failures(self) -> Iterator[tuple[str, object, str, str]]:
        """Yield ``(method, sample index, status, reason)`` for every failed result."""
        for sample in self.samples:
            for result in sample.results.values():
                if not result.ok:
                    yield result.method, sample.index, result.status, result.reason or "no reason recorded"


def read_explanations(run_dir: Path) -> ExplanationRecord:
    """Parse ``explanations/explanations.json`` of ``run_dir``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not JSON, or contains neither a list of samples nor an object with one.
    """
    path = run_dir / run_files.EXPLANATIONS_JSON
    if not path.is_file():
        raise FileNotFoundError(path)
    data = run_files.read_json(path)

    if isinstance(data, list):
        top: Mapping[str, Any] = {}
        raw_samples = data
    elif isinstance(data, dict):
        top = data
        raw_samples = next((data[key] for key in _SAMPLE_LIST_KEYS if isinstance(data.get(key), list)), None)
        if raw_samples is None:
            raise ValueError(
                f"{run_files.EXPLANATIONS_JSON} has no list of samples under any of "
                f"{list(_SAMPLE_LIST_KEYS)}; "
                f"its keys are {sorted(data)}"
            )
    else:
        raise ValueError(
            f"{run_files.EXPLANATIONS_JSON} contains a {type(data).__name__}, expected an object"
        )

    # "methods" is either a list of names or a mapping from name to facts about the method.
    declared = top.get("methods")
    declared_methods = [str(m) for m in declared] if isinstance(declared, (list, dict)) else []
    method_facts: dict[str, dict[str, object]] = {}
    if isinstance(declared, dict):
        method_facts = {str(name): dict(facts) for name, facts in declared.items() if isinstance(facts, dict)}
    explanations_dir = run_dir / run_files.EXPLANATIONS_DIR
    samples = [
        _parse_sample(raw, declared_methods, explanations_dir, run_dir)
        for raw in raw_samples
        if isinstance(raw, dict)
    ]

    methods = list(declared_methods)
    for sample in samples:
        methods.extend(name for name in sample.results if name not in methods)

    if isinstance(top.get("settings"), dict):
        settings = dict(top["settings"])
    else:
        settings = {
            key: value
            for key, value in top.items()
            if key not in _SAMPLE_LIST_KEYS and key not in ("methods", "failures") and _is_scalar(value)
        }
    raw_names = top.get("class_names")
    class_names = [str(name) for name in raw_names] if isinstance(raw_names, list) else None
    raw_failures = top.get("failures")
    extra_failures: list[dict[str, object]] = []
    if isinstance(raw_failures, list):
        extra_failures = [entry for entry in raw_failures if isinstance(entry, dict)]
    return ExplanationRecord(methods, samples, settings, extra_failures, method_facts, class_names)


def _parse_sample(
    raw: Mapping[str, Any], declared_methods: Sequence[str], explanations_dir: Path, run_dir: Path
) -> ExplainedSample:
    probability = _first(raw, _PROB_KEYS)
    results: dict[str, MethodResult] = {}
    for name, info in _method_entries(raw, declared_methods):
        results[name] = _parse_result(name, info, explanations_dir, run_dir)
    correct = raw.get("correct")
    return ExplainedSample(
        index=_first(raw, _INDEX_KEYS),
        true_label=_first(raw, _TRUE_KEYS),
        predicted_label=_first(raw, _PRED_KEYS),
        probability=float(probability) if _is_number(probability) else None,
        results=results,
        correct_flag=correct if isinstance(correct, bool) else None,
        true_name=_optional_str(raw.get("true_name")),
        predicted_name=_optional_str(raw.get("predicted_name")),
        explained_label=_first(raw, _EXPLAINED_KEYS),
    )


def _method_entries(raw: Mapping[str, Any], declared_methods: Sequence[str]) -> Iterable[tuple[str, Any]]:
    container = _first(raw, _METHODS_KEYS)
    if isinstance(container, dict):
        return [(str(name), info) for name, info in container.items()]
    if isinstance(container, list):
        entries = []
        for position, info in enumerate(container):
            name = _first(info, _METHOD_NAME_KEYS) if isinstance(info, dict) else None
            entries.append((str(name) if name is not None else f"method {position}", info))
        return entries
    # No container: methods may sit directly on the sample, under their own names.
    return [(name, raw[name]) for name in declared_methods if name in raw]


def _parse_result(method: str, info: Any, explanations_dir: Path, run_dir: Path) -> MethodResult:
    if isinstance(info, str):
        info = {"path": info}
    if not isinstance(info, dict):
        return MethodResult(method, ok=False, status="unreadable", reason=f"unexpected entry: {info!r}")

    reason = _first(info, _REASON_KEYS)
    status = info.get("status")
    if isinstance(status, bool):
        ok = status
    elif isinstance(status, str):
        ok = status.strip().lower() in _OK_STATUSES
    else:
        ok = reason is None
    if isinstance(status, str):
        status_text = status
    else:
        status_text = "ok" if ok else "failed"

    reason_text = str(reason) if reason is not None else None
    result = MethodResult(method, ok=ok, status=status_text, reason=reason_text)
    result.numbers = {
        key: float(value)
        for key, value in info.items()
        if key != "status" and _is_number(value)
    }
    for name in _png_names(info):
        found = _resolve(name, method, explanations_dir, run_dir)
        if found is None:
            result.missing_images.append(name)
        else:
            result.images.append(found)
    return result


def _png_names(value: Any) -> list[str]:
    """Collect every string ending in .png anywhere inside a result entry."""
    if isinstance(value, str):
        return [value] if value.lower().endswith(".png") else []
    if isinstance(value, dict):
        return [name for item in value.values() for name in _png_names(item)]
    if isinstance(value, list):
        return [name for item in value for name in _png_names(item)]
    return []


def _resolve(name: str, method: str, explanations_dir: Path, run_dir: Path) -> Path | None:
    candidate = Path(name)
    options = [candidate] if candidate.is_absolute() else [
        explanations_dir / candidate,
        run_dir / candidate,
        explanations_dir / method / candidate.name,
    ]
    return next((option for option in options if option.is_file()), None)


def _first(mapping: Any, keys: Sequence[str]) -> Any:
    if not isinstance(mapping, Mapping):
        return None
    return next((mapping[key] for key in keys if key in mapping), None)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, list) and all(isinstance(item, (str, int, float, bool)) for item in value)
    )
