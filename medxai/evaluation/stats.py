"""Statistics over per-sample Quantus scores: summaries, ranks, paired tests and a radar plot.

All functions take per-sample scores as float arrays in which NaN marks a sample whose score is
undefined; NaN samples are left out (and counted in ``n``), never replaced by a number. A score
direction is ``"higher"`` or ``"lower"`` (is better), or the matching
``quantus.helpers.enums.ScoreDirection``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from quantus.helpers.enums import ScoreDirection
from scipy import stats as scipy_stats

DIRECTIONS: tuple[str, ...] = ("higher", "lower")

# Family-wise error rate at which a Holm-corrected pairwise difference counts as significant.
SIGNIFICANCE_LEVEL = 0.05


def direction_name(direction: ScoreDirection | str) -> str:
    """Return ``"higher"`` or ``"lower"`` for a Quantus direction or its string value.

    Raises:
        ValueError: If ``direction`` is neither.
    """
    value = direction.value if isinstance(direction, ScoreDirection) else str(direction).lower()
    if value not in DIRECTIONS:
        raise ValueError(f"Invalid direction '{direction}'. Expected one of: {', '.join(DIRECTIONS)}.")
    return value


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return the finite entries of ``values`` as float64."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Compute a percentile bootstrap confidence interval of the mean.

    Samples are drawn with replacement ``n_resamples`` times from a
    ``numpy.random.default_rng(seed)`` generator, so the interval is reproducible.

    Args:
        values: Per-sample scores; non-finite entries are ignored.
        confidence: Confidence level in (0, 1).
        n_resamples: Number of bootstrap resamples (>= 1).
        seed: Seed of the resampling generator.

    Returns:
        ``(low, high)``; ``(nan, nan)`` with fewer than two finite values.

    Raises:
        ValueError: If ``confidence`` or ``n_resamples`` is out of range.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"Invalid confidence={confidence}. Expected a level in (0, 1), e.g. 0.95.")
    if n_resamples < 1:
        raise ValueError(f"Invalid n_resamples={n_resamples}. Expected at least 1.")
    data = finite(values)
    if data.size < 2:
        return math.nan, math.nan

    rng = np.random.default_rng(seed)
    indices = rng.integers(0, data.size, size=(n_resamples, data.size))
    means = data[indices].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def describe(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Return mean, sample standard deviation (ddof=1), bootstrap CI and count of the finite values.

    Returns:
        ``{"mean", "std", "ci_low", "ci_high", "n", "n_missing"}``; statistics that need more
        values than there are finite ones are NaN.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    data = finite(array)
    low, high = bootstrap_ci(data, confidence, n_resamples, seed)
    return {
        "mean": float(data.mean()) if data.size else math.nan,
        "std": float(data.std(ddof=1)) if data.size > 1 else math.nan,
        "ci_low": low,
        "ci_high": high,
        "n": int(data.size),
        "n_missing": int(array.size - data.size),
    }


def holm_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Adjust p-values for multiple comparisons with Holm's step-down method.

    With the ``m`` finite p-values sorted ascending, the adjusted value of the ``i``-th (1-based)
    is ``max_{j <= i} min(1, (m - j + 1) * p_(j))``. NaN p-values stay NaN and do not count in ``m``.

    Args:
        p_values: Raw p-values in [0, 1] or NaN.

    Returns:
        float64 array of adjusted p-values in the input order.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    if m == 0:
        return adjusted

    order = valid[np.argsort(p[valid], kind="stable")]
    factors = m - np.arange(m)
    stepped = np.minimum(1.0, factors * p[order])
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def wilcoxon_paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Run a two-sided Wilcoxon signed-rank test on paired samples.

    Only pairs where both scores are finite are used. ``scipy.stats.wilcoxon`` with its default
    ``zero_method="wilcox"`` drops zero differences.

    Returns:
        ``{"n_pairs", "statistic", "p_value", "note"}``. When every difference is zero the
        methods are indistinguishable on these samples, so ``p_value`` is 1.0 and ``note`` gives
        the reason.
        With fewer than two non-zero differences the test is undefined: ``p_value`` is NaN.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"Paired samples must have the same length, got {x.size} and {y.size}.")
    both = np.isfinite(x) & np.isfinite(y)
    differences = x[both] - y[both]
    n_pairs = int(both.sum())

    if n_pairs > 0 and np.all(differences == 0):
        return {"n_pairs": n_pairs, "statistic": math.nan, "p_value": 1.0, "note": "all differences are zero"}
    if np.count_nonzero(differences) < 2:
        return {
            "n_pairs": n_pairs,
            "statistic": math.nan,
            "p_value": math.nan,
            "note": "fewer than two non-zero paired differences",
        }
    result = scipy_stats.wilcoxon(x[both], y[both], alternative="two-sided")
    return {"n_pairs": n_pairs, "statistic": float(result.statistic), "p_value": float(result.pvalue), "note": ""}


def rank_methods(means: Mapping[str, float], direction: ScoreDirection | str) -> dict[str, float]:
    """Rank methods by mean score, 1 = best; ties share the average rank; NaN means get NaN.

    Args:
        means: ``{method: mean score}``.
        direction: Whether higher or lower scores are better.

    Returns:
        ``{method: rank}``.
    """
    sign = -1.0 if direction_name(direction) == "higher" else 1.0
    names = [name for name, value in means.items() if math.isfinite(value)]
    ranks = {name: math.nan for name in means}
    if names:
        ordered = scipy_stats.rankdata([sign * means[name] for name in names], method="average")
        ranks.update({name: float(rank) for name, rank in zip(names, ordered)})
    return ranks


def normalise_means(means: Mapping[str, float], direction: ScoreDirection | str) -> dict[str, float]:
    """Min-max scale method means to [0, 1] so that 1 is the best method and 0 the worst.

    For a lower-is-better metric the scale is flipped: ``1 - (mean - min) / (max - min)``.
    When every finite mean is the same (or only one method has one), all those methods tie for
    best and get 1.0. NaN means stay NaN. The scale is relative to the methods compared, not to
    the metric's theoretical range.

    Returns:
        ``{method: normalised score}``.
    """
    higher = direction_name(direction) == "higher"
    values = {name: value for name, value in means.items() if math.isfinite(value)}
    normalised = {name: math.nan for name in means}
    if not values:
        return normalised
    low, high = min(values.values()), max(values.values())
    for name, value in values.items():
        if high == low:
            normalised[name] = 1.0
            continue
        scaled = (value - low) / (high - low)
        normalised[name] = scaled if higher else 1.0 - scaled
    return normalised


def summarise(
    scores: Mapping[str, Mapping[str, np.ndarray]],
    metric_info: Mapping[str, Mapping[str, str]],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Summarise per-sample scores per method and metric, with the rank of the method.

    Args:
        scores: ``{method: {metric: float array (N,)}}``.
        metric_info: ``{metric: {"property": str, "direction": "higher" | "lower"}}``.
        confidence: Bootstrap confidence level.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed (the same for every cell, so cells are comparable).

    Returns:
        One row per (method, metric) present in ``scores``, ordered by metric then method:
        ``method, metric, property, direction, mean, std, ci_low, ci_high, n, n_missing, rank``.
    """
    rows: list[dict[str, Any]] = []
    for metric, info in metric_info.items():
        direction = direction_name(info["direction"])
        cells = {method: per_metric[metric] for method, per_metric in scores.items() if metric in per_metric}
        described = {method: describe(values, confidence, n_resamples, seed) for method, values in cells.items()}
        ranks = rank_methods({method: d["mean"] for method, d in described.items()}, direction)
        for method, description in described.items():
            rows.append(
                {
                    "method": method,
                    "metric": metric,
                    "property": info["property"],
                    "direction": direction,
                    **description,
                    "rank": ranks[method],
                }
            )
    return rows


def pairwise_tests(
    scores: Mapping[str, Mapping[str, np.ndarray]], metric_info: Mapping[str, Mapping[str, str]]
) -> list[dict[str, Any]]:
    """Compare every pair of methods on every metric with paired Wilcoxon tests and Holm correction.

    The Holm family is the set of pairwise tests of one metric, so with ``k`` methods each metric
    adjusts ``k (k - 1) / 2`` p-values.

    Args:
        scores: ``{method: {metric: float array (N,)}}``; arrays of one metric are paired by index.
        metric_info: ``{metric: {"property": str, "direction": "higher" | "lower"}}``.

    Returns:
        One row per metric and method pair: ``metric, property, direction, method_a, method_b,
        n_pairs, statistic, p_value, p_holm, significant, rank_a, rank_b, better, note``.
        ``better`` names the method with the better mean (empty on a tie), whether or not the
        difference is significant. ``significant`` is whether ``p_holm`` is below
        :data:`SIGNIFICANCE_LEVEL`.
    """
    rows: list[dict[str, Any]] = []
    for metric, info in metric_info.items():
        direction = direction_name(info["direction"])
        cells = {method: np.asarray(per_metric[metric], dtype=np.float64) for method, per_metric in scores.items()
                 if metric in per_metric}
        means = {method: float(np.mean(finite(values))) if finite(values).size else math.nan
                 for method, values in cells.items()}
        ranks = rank_methods(means, direction)

        metric_rows = []
        for method_a, method_b in itertools.combinations(cells, 2):
            test = wilcoxon_paired(cells[method_a], cells[method_b])
            metric_rows.append(
                {
                    "metric": metric,
                    "property": info["property"],
                    "direction": direction,
                    "method_a": method_a,
                    "method_b": method_b,
                    "n_pairs": test["n_pairs"],
                    "statistic": test["statistic"],
                    "p_value": test["p_value"],
                    "rank_a": ranks[method_a],
                    "rank_b": ranks[method_b],
                    "better": _better(method_a, method_b, ranks),
                    "note": test["note"],
                }
            )
        adjusted = holm_adjust([row["p_value"] for row in metric_rows])
        for row, p_holm in zip(metric_rows, adjusted):
            row["p_holm"] = float(p_holm)
            row["significant"] = bool(math.isfinite(p_holm) and p_holm < SIGNIFICANCE_LEVEL)
        rows.extend(metric_rows)
    return rows


def normalised_table(summary_rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Build ``{method: {metric: normalised mean}}`` from :func:`summarise` rows (1 = best)."""
    by_metric: dict[str, dict[str, float]] = {}
    directions: dict[str, str] = {}
    for row in summary_rows:
        by_metric.setdefault(row["metric"], {})[row["method"]] = float(row["mean"])
        directions[row["metric"]] = row["direction"]

    table: dict[str, dict[str, float]] = {}
    for metric, means in by_metric.items():
        for method, value in normalise_means(means, directions[metric]).items():
            table.setdefault(method, {})[metric] = value
    return table


def radar_figure(
    table: Mapping[str, Mapping[str, float]], axis_labels: Mapping[str, str] | None = None
) -> Figure:
    """Draw one polygon per method over the metrics of a normalised table (1 = best, at the rim).

    Args:
        table: ``{method: {metric: value in [0, 1] or NaN}}``; NaN is drawn at 0 and its metric's
            label is marked "(n/a: method)" so a missing score is not mistaken for a bad one.
        axis_labels: Optional ``{metric: label}``, e.g. with the property name.

    Returns:
        A matplotlib Figure (not attached to pyplot, so no display backend is needed).
    """
    methods = list(table)
    metrics = list(dict.fromkeys(metric for values in table.values() for metric in values))
    figure = Figure(figsize=(7.0, 7.0))
    axes = figure.add_subplot(projection="polar")
    if not metrics:
        axes.set_title("No scores to plot")
        return figure

    angles = np.linspace(0.0, 2.0 * np.pi, len(metrics), endpoint=False)
    closed_angles = np.concatenate([angles, angles[:1]])
    labels = []
    for metric in metrics:
        label = (axis_labels or {}).get(metric, metric)
        missing = [method for method in methods if not math.isfinite(table[method].get(metric, math.nan))]
        labels.append(label + (f"\n(n/a: {', '.join(missing)})" if missing else ""))

    for method in methods:
        values = np.array([table[method].get(metric, math.nan) for metric in metrics], dtype=np.float64)
        values = np.nan_to_num(values, nan=0.0)
        closed = np.concatenate([values, values[:1]])
        axes.plot(closed_angles, closed, linewidth=1.5, label=method)
        axes.fill(closed_angles, closed, alpha=0.08)

    axes.set_xticks(angles)
    axes.set_xticklabels(labels, fontsize=8)
    axes.set_ylim(0.0, 1.0)
    axes.set_yticks([0.25, 0.5, 0.75, 1.0])
    axes.set_title("Normalised Quantus scores (1 = best method on the metric)", fontsize=10)
    axes.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    return figure


def _better(method_a: str, method_b: str, ranks: Mapping[str, float]) -> str:
    rank_a, rank_b = ranks[method_a], ranks[method_b]
    if not (math.isfinite(rank_a) and math.isfinite(rank_b)) or rank_a == rank_b:
        return ""
    return method_a if rank_a < rank_b else method_b
