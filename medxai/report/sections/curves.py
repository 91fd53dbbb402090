"""Training curves read from the run's TensorBoard event files."""

from __future__ import annotations

import re
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from medxai.report import run_files
from medxai.report.context import ReportContext
from medxai.report.figures import plot_scalar_curves
from medxai.report.html import Section, image, notice, paragraph, table

Curves = dict[str, tuple[list[int], list[float]]]

# Scalars shown elsewhere in the report (test metrics, Quantus scores) or carrying no curve.
_SKIPPED_TAG = re.compile(r"^(quantus/|test[_/]|epoch$|hp_metric$)")
_LOSS_TAG = re.compile(r"loss", re.IGNORECASE)
_AUC_ACC_TAG = re.compile(r"auc|acc", re.IGNORECASE)


def read_scalars(run_dir: Path) -> Curves:
    """Load every scalar series from the event files directly inside ``run_dir``.

    Args:
        run_dir: The run directory. Event files in subfolders are not read.

    Returns:
        Tag name to ``(global steps, values)``, in step order. All points are kept (no sampling).
    """
    # size_guidance 0 keeps every point; TensorBoard's default keeps a sample of 10 000.
    accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
    accumulator.Reload()
    curves: Curves = {}
    for tag in accumulator.Tags().get(SCALARS, []):
        events = sorted(accumulator.Scalars(tag), key=lambda event: event.step)
        curves[tag] = ([event.step for event in events], [float(event.value) for event in events])
    return curves


def group_curves(curves: Curves) -> dict[str, Curves]:
    """Split tags into the plots of the report: loss, AUC and accuracy, and the other scalars."""
    groups: dict[str, Curves] = {"Loss": {}, "AUC and accuracy": {}, "Other scalars": {}}
    for tag, series in curves.items():
        if _SKIPPED_TAG.search(tag):
            continue
        if _LOSS_TAG.search(tag):
            groups["Loss"][tag] = series
        elif _AUC_ACC_TAG.search(tag):
            groups["AUC and accuracy"][tag] = series
        else:
            groups["Other scalars"][tag] = series
    return {title: group for title, group in groups.items() if group}


def render(context: ReportContext) -> Section:
    """Plot the loss and the AUC and accuracy curves, with the last value of each tag in a table."""
    if not run_files.event_files(context.run_dir):
        body = notice(run_files.missing_message(run_files.EVENT_FILE_PREFIX + "* (TensorBoard)", "events"))
        return Section("curves", "Training curves", body)

    groups = group_curves(read_scalars(context.run_dir))
    if not groups:
        body = notice(
            "The TensorBoard event files contain no training scalars "
            "(losses and metrics are logged by the LightningModule during fit)."
        )
        return Section("curves", "Training curves", body)

    parts = []
    last_values = []
    for title, group in groups.items():
        ylabel = "loss" if title == "Loss" else "value"
        png = plot_scalar_curves(group, title=title, ylabel=ylabel)
        parts.append(image(png, f"{title} curves", caption=title))
        for tag, (steps, values) in sorted(group.items()):
            best: float | str = ""
            if title == "Loss":
                best = min(values)
            elif title == "AUC and accuracy":
                best = max(values)
            last_values.append((tag, len(values), steps[-1], values[-1], best))
    parts.append("<h3>Last values</h3>")
    parts.append(table(["tag", "points", "last step", "last value", "best value"], last_values))
    note = "Best value: the minimum of a loss and the maximum of an AUC or accuracy."
    parts.append(paragraph(note, "muted"))
    return Section("curves", "Training curves", "".join(parts))
