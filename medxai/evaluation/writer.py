"""Write a Quantus evaluation to disk: per-sample scores, summaries, tests and a radar plot.

Files written under the output folder (all through :mod:`medxai.io`, so each is complete or
absent):

* ``scores.json``: settings, library versions, the evaluated samples, every metric's
  parameters and score direction, per-sample scores (NaN as ``null``), failures with reasons,
  skipped metrics and timings;
* ``summary.csv``: one row per method and metric with property, direction, mean, standard
  deviation, bootstrap CI, ``n`` (finite scores), ``n_missing`` and the rank of the method;
* ``normalized.csv``: methods by metrics, each metric's method means min-max scaled to [0, 1]
  with 1 the best method;
* ``stats.csv``: paired Wilcoxon tests between methods per metric, raw and Holm-adjusted
  p-values, and the ranks of both methods;
* ``radar.png``: the normalised table as a radar plot.
"""

from __future__ import annotations

import csv
import io
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from medxai.evaluation.runner import SuiteResult
from medxai.evaluation.stats import normalised_table, pairwise_tests, radar_figure, summarise
from medxai.io import save_figure, write_json, write_text

#: Distributions whose versions are recorded in ``scores.json``.
RECORDED_PACKAGES: tuple[str, ...] = (
    "medxai",
    "quantus",
    "torch",
    "torchvision",
    "captum",
    "grad-cam",
    "lightning",
    "numpy",
    "scipy",
    "scikit-image",
    "matplotlib",
    "medmnist",
)

SUMMARY_COLUMNS: tuple[str, ...] = (
    "method", "metric", "property", "direction", "mean", "std", "ci_low", "ci_high", "n", "n_missing", "rank",
)
STATS_COLUMNS: tuple[str, ...] = (
    "metric", "property", "direction", "method_a", "method_b", "n_pairs", "statistic", "p_value", "p_holm",
    "significant", "rank_a", "rank_b", "better", "note",
)


@dataclass(frozen=True)
class EvaluationReport:
    """Tables, figure and file paths produced by :func:`write_evaluation`.

    Attributes:
        summary: Rows of ``summary.csv``.
        tests: Rows of ``stats.csv``.
        normalised: ``{method: {metric: value in [0, 1] or NaN}}``, the content of ``normalized.csv``.
        figure: The radar plot.
        paths: ``{file stem: path}`` of the written files.
    """

    summary: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    normalised: dict[str, dict[str, float]]
    figure: Figure
    paths: dict[str, Path]


def library_versions() -> dict[str, str | None]:
    """Return the installed versions of :data:`RECORDED_PACKAGES` and Python (None if not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_evaluation(
    out_dir: str | Path,
    result: SuiteResult,
    samples: Mapping[str, Sequence[int]],
    settings: Mapping[str, Any],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> EvaluationReport:
    """Compute the statistics of ``result`` and write every output file into ``out_dir``.

    Args:
        out_dir: Output folder (created if missing).
        result: Scores from :func:`medxai.evaluation.run_suite`.
        samples: Per-sample metadata in score order, e.g. ``{"index": [...], "label": [...],
            "target": [...]}``.
        settings: The evaluation settings, recorded in ``scores.json`` as ``config``.
        confidence: Level of the bootstrap confidence intervals.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        The computed tables, the radar figure and the written paths.
    """
    folder = Path(out_dir)
    metric_info = result.metric_info()
    summary = summarise(result.scores, metric_info, confidence, n_resamples, seed)
    tests = pairwise_tests(result.scores, metric_info)
    normalised = normalised_table(summary)
    axis_labels = {name: f"{name}\n({info['property']})" for name, info in metric_info.items()}
    figure = radar_figure(normalised, axis_labels)

    paths = {
        "scores": write_json(folder / "scores.json", _scores_document(result, samples, settings, confidence, n_resamples)),
        "summary": write_text(folder / "summary.csv", _csv(summary, SUMMARY_COLUMNS)),
        "normalized": write_text(folder / "normalized.csv", _normalised_csv(normalised, list(metric_info))),
        "stats": write_text(folder / "stats.csv", _csv(tests, STATS_COLUMNS)),
        "radar": save_figure(figure, folder / "radar.png"),
    }
    return EvaluationReport(summary=summary, tests=tests, normalised=normalised, figure=figure, paths=paths)


def _scores_document(
    result: SuiteResult,
    samples: Mapping[str, Sequence[int]],
    settings: Mapping[str, Any],
    confidence: float,
    n_resamples: int,
) -> dict[str, Any]:
    return {
        "config": dict(settings),
        "versions": library_versions(),
        "statistics": {"bootstrap": "percentile", "confidence": confidence, "n_resamples": n_resamples},
        "samples": {key: [int(value) for value in values] for key, values in samples.items()},
        "metrics": result.metrics,
        "scores": {
            method: {metric: np.asarray(values, dtype=np.float64) for metric, values in per_metric.items()}
            for method, per_metric in result.scores.items()
        },
        "failures": [failure.as_dict() for failure in result.failures],
        "skipped": dict(result.skipped),
        "seconds": result.seconds,
    }


def _csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _cell(row.get(column)) for column in columns})
    return buffer.getvalue()


def _normalised_csv(table: Mapping[str, Mapping[str, float]], metrics: Sequence[str]) -> str:
    rows = [{"method": method, **values} for method, values in table.items()]
    return _csv(rows, ["method", *metrics])


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, ".10g")
    return "" if value is None else value
