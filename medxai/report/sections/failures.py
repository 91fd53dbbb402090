"""Every failure recorded by the explanation and Quantus callbacks, with its reason."""

from __future__ import annotations

from medxai.report import quantus_record, run_files
from medxai.report.context import ReportContext
from medxai.report.explanation_record import read_explanations
from medxai.report.html import Section, notice, paragraph, plural, table


def render(context: ReportContext) -> Section:
    """List explanation failures per sample and method, then Quantus failures per method and metric."""
    parts = ["<h3>Explanations</h3>", _explanation_failures(context)]
    parts += ["<h3>Quantus</h3>", _quantus_failures(context)]
    return Section("failures", "Failures", "".join(parts))


def _explanation_failures(context: ReportContext) -> str:
    if not (context.run_dir / run_files.EXPLANATIONS_JSON).is_file():
        return notice(
            "Unknown: " + run_files.missing_message(run_files.EXPLANATIONS_JSON, run_files.EXPLANATIONS_DIR)
        )
    try:
        record = read_explanations(context.run_dir)
    except (OSError, ValueError) as err:
        return notice(f"Unknown: cannot read {run_files.EXPLANATIONS_JSON}: {err}", error=True)

    rows: list[list[object]] = [list(failure) for failure in record.failures()]
    rows += [["", "", "", str(entry)] for entry in record.extra_failures]
    if not rows:
        return paragraph("No failed explanation recorded.")
    summary = paragraph(f"{plural(len(rows), 'failed explanation')}.")
    return summary + table(["method", "sample", "status", "reason"], rows)


def _quantus_failures(context: ReportContext) -> str:
    if not (context.run_dir / run_files.QUANTUS_SCORES).is_file():
        return notice(
            "Unknown: " + run_files.missing_message(run_files.QUANTUS_SCORES, run_files.QUANTUS_DIR)
        )
    try:
        scores = quantus_record.read_scores(context.run_dir)
    except (OSError, ValueError) as err:
        return notice(f"Unknown: cannot read {run_files.QUANTUS_SCORES}: {err}", error=True)

    parts = []
    rows = quantus_record.failures(scores)
    if rows:
        parts.append(
            paragraph(
                f"{plural(len(rows), '(method, metric) pair')} without a finite score for every sample. "
                "Where n_failed is below n_total, the other samples are scored and the statistics "
                "leave out only the failed ones."
            )
        )
        parts.append(_dict_table(rows))
    else:
        parts.append(paragraph("No failed metric recorded."))
    skipped = quantus_record.skipped(scores)
    if skipped:
        parts.append(paragraph(f"{plural(len(skipped), 'metric')} skipped on this data:"))
        parts.append(table(["metric", "reason"], list(skipped.items())))
    return "".join(parts)


def _dict_table(rows: list[dict[str, object]]) -> str:
    """Render dicts with the union of their keys as columns, ``reason`` last."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    if "reason" in columns:
        columns.remove("reason")
        columns.append("reason")
    return table(columns, [[row.get(key, "") for key in columns] for row in rows])
