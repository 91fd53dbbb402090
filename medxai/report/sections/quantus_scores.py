"""Quantus tables, the radar plot and the versions recorded by the Quantus callback."""

from __future__ import annotations

import json
from typing import Any

from medxai.evaluation.stats import SIGNIFICANCE_LEVEL
from medxai.report import quantus_record, run_files
from medxai.report.context import ReportContext
from medxai.report.html import (
    Section,
    details,
    image,
    key_value_table,
    notice,
    paragraph,
    plural,
    preformatted,
    table,
)

# (file, heading, what the table contains)
_TABLES = (
    (
        run_files.QUANTUS_SUMMARY,
        "Raw scores",
        "Mean, standard deviation and 95% bootstrap confidence interval per method and metric, "
        "in each metric's own units and direction.",
    ),
    (
        run_files.QUANTUS_NORMALIZED,
        "Normalised scores",
        "Scores rescaled to 0 to 1 across methods, with 1 the best, whatever the metric's direction. "
        "The rescaling stretches even small differences to the full range: check the significant "
        "column below before reading a gap as a finding.",
    ),
    (
        run_files.QUANTUS_STATS,
        "Ranks and significance",
        "Ranks of the methods per metric and paired Wilcoxon signed-rank tests between methods, "
        f"with Holm-corrected p-values. significant is p_holm < {SIGNIFICANCE_LEVEL}; better names the "
        "method with the better mean even where the difference is not significant.",
    ),
)
# Quantus parameters that change only its output format, left out of the metric table.
_DISPLAY_PARAMETERS = frozenset({"disable_warnings", "display_progressbar", "return_aggregate"})
# Columns of the metric description table, and the scores.json key behind each.
_METRIC_COLUMNS = (
    ("property", "property"),
    ("better when", "direction"),
    ("reference", "reference"),
    ("what it measures and how medxai runs it", "note"),
)


def render(context: ReportContext) -> Section:
    """Render the three CSV tables, the radar plot and the scores.json metadata."""
    quantus_dir = context.run_dir / run_files.QUANTUS_DIR
    if not quantus_dir.is_dir():
        body = notice(run_files.missing_message(run_files.QUANTUS_DIR + "/", run_files.QUANTUS_DIR))
        return Section("quantus", "Quantus evaluation", body)

    scores, scores_problem = _read_scores(context)
    parts = [_metric_descriptions(scores)]
    for relative_path, heading, description in _TABLES:
        parts.append(f"<h3>{heading}</h3>")
        parts.append(_csv_table(context, relative_path, description))

    parts.append("<h3>Radar plot</h3>")
    radar = context.run_dir / run_files.QUANTUS_RADAR
    if radar.is_file():
        alt = "Radar plot of normalised Quantus scores"
        parts.append(image(radar.read_bytes(), alt, caption=run_files.QUANTUS_RADAR))
        parts.append(paragraph("The radar shows the normalised scores, so it shares their caveat.", "muted"))
    else:
        parts.append(notice(run_files.missing_message(run_files.QUANTUS_RADAR, run_files.QUANTUS_DIR)))

    parts.append("<h3>Run record (scores.json)</h3>")
    parts.append(scores_problem if scores is None else _scores_metadata(scores))
    return Section("quantus", "Quantus evaluation", "".join(parts))


def _csv_table(context: ReportContext, relative_path: str, description: str) -> str:
    path = context.run_dir / relative_path
    if not path.is_file():
        return notice(run_files.missing_message(relative_path, run_files.QUANTUS_DIR))
    try:
        csv_table = quantus_record.read_csv(path)
    except (OSError, ValueError) as err:
        return notice(f"Cannot read {relative_path}: {err}", error=True)
    return paragraph(description, "muted") + table(csv_table.header, csv_table.rows)


def _read_scores(context: ReportContext) -> tuple[dict[str, Any] | None, str]:
    """Read scores.json once for the section, or return a notice that explains why it cannot be read."""
    path = context.run_dir / run_files.QUANTUS_SCORES
    if not path.is_file():
        return None, notice(run_files.missing_message(run_files.QUANTUS_SCORES, run_files.QUANTUS_DIR))
    try:
        return quantus_record.read_scores(context.run_dir), ""
    except (OSError, ValueError) as err:
        return None, notice(f"Cannot read {run_files.QUANTUS_SCORES}: {err}", error=True)


def _metric_descriptions(scores: dict[str, Any] | None) -> str:
    """Return a table of what each metric measures, its direction and its paper, from scores.json."""
    metrics = scores.get("metrics") if scores else None
    if not isinstance(metrics, dict) or not metrics:
        return ""
    rows = []
    for name, info in metrics.items():
        info = info if isinstance(info, dict) else {}
        cells = [info.get(key, "") for _, key in _METRIC_COLUMNS]
        rows.append([name, *cells, _parameters(info.get("params"))])
    header = ["metric", *(title for title, _ in _METRIC_COLUMNS), "parameters"]
    intro = paragraph("Each metric's units and range are those of the paper it follows.", "muted")
    return "<h3>Metrics</h3>" + intro + table(header, rows)


def _parameters(params: object) -> str:
    """Format a metric's parameters as ``name=value`` pairs, without the display switches."""
    if not isinstance(params, dict):
        return ""
    pairs = [f"{name}={value}" for name, value in params.items() if name not in _DISPLAY_PARAMETERS]
    return ", ".join(pairs)


def _scores_metadata(scores: dict[str, Any]) -> str:
    parts = []
    recorded_versions = quantus_record.versions(scores)
    if recorded_versions:
        parts.append(paragraph("Library versions recorded during the run:"))
        parts.append(key_value_table(recorded_versions.items()))
    failure_count = len(quantus_record.failures(scores))
    parts.append(
        paragraph(
            f"{plural(failure_count, 'recorded failure')} (listed under Failures). "
            "Per-sample scores are in quantus/scores.json."
        )
    )
    if "config" in scores:
        config_text = json.dumps(scores["config"], indent=2, sort_keys=True, default=str)
        parts.append(details("Quantus settings", preformatted(config_text)))
    return "".join(parts)
