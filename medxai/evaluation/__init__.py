"""Quantus evaluation of attribution maps: metric registry, runner, statistics and Focus mosaics.

Example:
    >>> from medxai.evaluation import QuantusExplainFunc, run_suite
    >>> funcs = {"gradcam": QuantusExplainFunc("gradcam"), "ig": QuantusExplainFunc("ig")}  # doctest: +SKIP
    >>> result = run_suite(model, x, y, funcs, num_classes=2)  # doctest: +SKIP
"""

from medxai.evaluation.explain_func import QuantusExplainFunc
from medxai.evaluation.mosaic import FocusMosaics, build_focus_mosaics, plan_focus_mosaics, tile_mosaics
from medxai.evaluation.runner import EXPLANATION, Failure, SuiteResult, merge_results, per_sample_scores, run_suite
from medxai.evaluation.stats import (
    bootstrap_ci,
    describe,
    holm_adjust,
    normalise_means,
    normalised_table,
    pairwise_tests,
    radar_figure,
    rank_methods,
    summarise,
    wilcoxon_paired,
)
from medxai.evaluation.suite import (
    MASK_METRICS,
    METRIC_NAMES,
    REGISTRY,
    InputGeometry,
    MetricSpec,
    get_spec,
    validate_metric_names,
    validate_overrides,
)
from medxai.evaluation.writer import EvaluationReport, library_versions, write_evaluation

__all__ = [
    "EXPLANATION",
    "EvaluationReport",
    "MASK_METRICS",
    "METRIC_NAMES",
    "REGISTRY",
    "Failure",
    "FocusMosaics",
    "InputGeometry",
    "MetricSpec",
    "QuantusExplainFunc",
    "SuiteResult",
    "bootstrap_ci",
    "build_focus_mosaics",
    "describe",
    "get_spec",
    "holm_adjust",
    "library_versions",
    "merge_results",
    "normalise_means",
    "normalised_table",
    "pairwise_tests",
    "plan_focus_mosaics",
    "per_sample_scores",
    "radar_figure",
    "rank_methods",
    "run_suite",
    "summarise",
    "tile_mosaics",
    "validate_metric_names",
    "validate_overrides",
    "wilcoxon_paired",
    "write_evaluation",
]
