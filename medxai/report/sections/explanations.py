"""Attribution grid: summary figures and one row per explained sample, one column per method."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medxai.report import run_files
from medxai.report.context import ReportContext
from medxai.report.explanation_record import ExplainedSample, ExplanationRecord, read_explanations
from medxai.report.html import (
    Section,
    details,
    esc,
    image,
    inline_image,
    key_value_table,
    notice,
    paragraph,
    plural,
    table,
)


def render(context: ReportContext) -> Section:
    """Render the summary figures, the settings and the per-sample grid of ``explanations/``."""
    explanations_dir = context.run_dir / run_files.EXPLANATIONS_DIR
    if not explanations_dir.is_dir():
        body = notice(run_files.missing_message(run_files.EXPLANATIONS_DIR + "/", run_files.EXPLANATIONS_DIR))
        return Section("explanations", "Explanations", body)

    parts = [_summary_figures(explanations_dir), _raw_maps(explanations_dir)]
    json_path = context.run_dir / run_files.EXPLANATIONS_JSON
    if not json_path.is_file():
        missing = run_files.missing_message(run_files.EXPLANATIONS_JSON, run_files.EXPLANATIONS_DIR)
        parts.append(notice(missing))
        return Section("explanations", "Explanations", "".join(parts))

    try:
        record = read_explanations(context.run_dir)
    except (OSError, ValueError) as err:
        parts.append(notice(f"Cannot read {run_files.EXPLANATIONS_JSON}: {err}", error=True))
        return Section("explanations", "Explanations", "".join(parts))

    if record.settings:
        parts.insert(0, key_value_table(record.settings.items()))
    if record.method_facts:
        parts.append("<h3>Methods</h3>")
        parts.append(_method_table(record))
    class_names = context.class_names() or record.class_names
    parts.append(_grid(record, class_names, context.max_grid_samples))
    return Section("explanations", "Explanations", "".join(parts))


def _summary_figures(explanations_dir: Path) -> str:
    """Embed the summary PNGs, then the per-method grid PNGs in a collapsed block.

    Summary figures are top-level PNGs whose name contains "summary"; grids are the other
    top-level PNGs (``<method>_grid.png``) and ``grid``/``summary`` PNGs one folder down.
    """
    top_level = sorted(explanations_dir.glob("*.png"))
    summaries = [path for path in top_level if "summary" in path.stem.lower()]
    grids = [path for path in top_level if path not in summaries]
    grids += sorted(
        path
        for path in explanations_dir.glob("*/*.png")
        if any(word in path.stem.lower() for word in ("grid", "summary"))
    )

    parts = [_figure(path, explanations_dir) for path in summaries]
    if not summaries:
        parts.append(
            notice(
                f"No summary figure in {run_files.EXPLANATIONS_DIR}/ "
                "(expected summary.png from the explanation callback)."
            )
        )
    if grids:
        label = f"Grids per method ({plural(len(grids), 'figure')})"
        parts.append(details(label, "".join(_figure(path, explanations_dir) for path in grids)))
    return "".join(parts)


def _figure(path: Path, explanations_dir: Path) -> str:
    caption = str(path.relative_to(explanations_dir))
    return image(path.read_bytes(), f"Explanation figure {caption}", caption=caption)


def _raw_maps(explanations_dir: Path) -> str:
    """List the arrays of attributions.npz with their shapes, without loading pickled objects."""
    path = explanations_dir / "attributions.npz"
    if not path.is_file():
        return paragraph("No attributions.npz (raw maps) in explanations/.", "muted")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            rows = [(name, str(arrays[name].shape), str(arrays[name].dtype)) for name in arrays.files]
    except (OSError, ValueError) as err:
        return notice(f"Cannot read explanations/attributions.npz: {err}", error=True)
    return "<h3>Raw maps (attributions.npz)</h3>" + table(["array", "shape", "dtype"], rows)


def _method_table(record: ExplanationRecord) -> str:
    """One row per method with the facts recorded for it (paper, library, time, counts)."""
    columns: list[str] = []
    for facts in record.method_facts.values():
        columns.extend(key for key in facts if key not in columns)
    rows = [
        [method, *(facts.get(key, "") for key in columns)] for method, facts in record.method_facts.items()
    ]
    return table(["method", *columns], rows)


def _grid(record: ExplanationRecord, class_names: Sequence[str] | None, max_samples: int) -> str:
    samples = record.samples
    if not samples:
        return notice(f"{run_files.EXPLANATIONS_JSON} lists no samples.")

    wrong = [sample for sample in samples if sample.correct is False]
    visible = samples[:max_samples]
    intro = f"{plural(len(samples), 'explained sample')}, {len(wrong)} predicted wrongly"
    if wrong:
        index_word = "index" if len(wrong) == 1 else "indices"
        intro += f" (test {index_word} {', '.join(str(sample.index) for sample in wrong)})"
    intro += f". Methods: {', '.join(record.methods) or 'none recorded'}."
    if len(visible) < len(samples):
        intro += f" The grid shows the first {len(visible)}; every PNG is in explanations/."

    header = "".join(f'<th scope="col">{esc(method)}</th>' for method in record.methods)
    rows = "".join(_grid_row(sample, record.methods, class_names) for sample in visible)
    grid = (
        '<div class="table-scroll"><table class="grid"><thead><tr><th scope="col">sample</th>'
        f"{header}</tr></thead><tbody>{rows}</tbody></table></div>"
    )
    return "<h3>Samples by method</h3>" + paragraph(intro) + grid


def _grid_row(sample: ExplainedSample, methods: Sequence[str], class_names: Sequence[str] | None) -> str:
    correct = sample.correct
    if correct is False:
        badge = '<span class="badge wrong">&#10007; wrong</span>'
    elif correct is True:
        badge = '<span class="badge right">&#10003; correct</span>'
    else:
        badge = '<span class="badge">unknown</span>'
    probability = f"<br>p = {sample.probability:.3f}" if sample.probability is not None else ""
    explained = ""
    if sample.explained_label is not None and str(sample.explained_label) != str(sample.predicted_label):
        explained = f"<br>explained class: {esc(_label(sample.explained_label, None, class_names))}"
    info = (
        f"<td><strong>#{esc(sample.index)}</strong> {badge}<br>"
        f"true: {esc(_label(sample.true_label, sample.true_name, class_names))}<br>"
        f"predicted: {esc(_label(sample.predicted_label, sample.predicted_name, class_names))}"
        f"{probability}{explained}</td>"
    )

    cells = []
    for method in methods:
        result = sample.results.get(method)
        if result is None:
            cells.append('<td class="cell muted">not run</td>')
        elif not result.ok:
            cells.append(
                f'<td class="cell"><span class="badge wrong">{esc(result.status)}</span><br>'
                f"{esc(result.reason or 'no reason recorded')}</td>"
            )
        elif result.images:
            alt = f"{method} on sample {sample.index}"
            numbers = "".join(
                f'<div class="muted">{esc(key)} = {value:.3g}</div>'
                for key, value in result.numbers.items()
            )
            cells.append(f'<td class="cell">{inline_image(result.images[0].read_bytes(), alt)}{numbers}</td>')
        else:
            missing = ", ".join(result.missing_images) or "no PNG path recorded"
            cells.append(f'<td class="cell muted">image missing: {esc(missing)}</td>')
    row_class = ' class="wrong"' if correct is False else ""
    return f"<tr{row_class}>{info}{''.join(cells)}</tr>"


def _label(label: object, name: str | None, class_names: Sequence[str] | None) -> str:
    """Show an integer label with its class name when the name is recorded or known."""
    if label is None:
        return name or "unknown"
    if name and name != str(label):
        return f"{label} ({name})"
    if class_names and isinstance(label, int) and not isinstance(label, bool):
        if 0 <= label < len(class_names):
            return f"{label} ({class_names[label]})"
    return str(label)
