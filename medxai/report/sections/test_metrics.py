"""Test metrics, per-class metrics and the confusion matrix from ``test_metrics.json``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medxai.report import run_files
from medxai.report.context import ReportContext
from medxai.report.figures import plot_confusion_matrix
from medxai.report.html import Section, details, image, key_value_table, notice, paragraph, table

# Checkpoint key that Lightning's WeightAveraging callback adds (Lightning 2.6).
AVERAGED_MARKER = "current_model_state"
# Columns shown first in the per-class table; any other keys follow in file order.
_PER_CLASS_FIRST = ("class", "precision", "recall", "f1", "support")


def render(context: ReportContext) -> Section:
    """Render the overall metrics, the per-class table and the confusion matrix."""
    if context.test_metrics_error:
        body = notice(f"Cannot read {run_files.TEST_METRICS}: {context.test_metrics_error}", error=True)
        return Section("test-metrics", "Test metrics", body)
    if context.test_metrics is None:
        body = notice(run_files.missing_message(run_files.TEST_METRICS, run_files.TEST_METRICS))
        return Section("test-metrics", "Test metrics", body)

    metrics = context.test_metrics
    class_names = context.class_names()
    parts = []

    parts.append(paragraph(_how_computed(context), "muted"))
    overall = metrics.get("metrics")
    if isinstance(overall, dict) and overall:
        parts.append(key_value_table(overall.items()))
    else:
        parts.append(notice(f"{run_files.TEST_METRICS} has no 'metrics' object."))

    parts.append("<h3>Per class</h3>")
    parts.append(_per_class_table(metrics.get("per_class")))

    parts.append("<h3>Confusion matrix</h3>")
    parts.append(_confusion_matrix(metrics.get("confusion_matrix"), class_names))
    return Section("test-metrics", "Test metrics", "".join(parts))


def _how_computed(context: ReportContext) -> str:
    """Describe which checkpoint the metrics come from, and whether EMA weights and flip TTA were used."""
    metrics = context.test_metrics or {}
    sentences = []
    checkpoint = metrics.get("checkpoint")
    count = metrics.get("num_samples")
    source = f"checkpoint {checkpoint}" if checkpoint else "the model's weights at the end of training"
    sentences.append(f"Computed on {count} test images from {source}." if count else f"Computed from {source}.")
    if checkpoint and _has_averaged_weights(Path(str(checkpoint))):
        sentences.append("Its weights are the exponential moving average (EMA) of the training weights.")
    if context.config_section("model").get("tta") is True:
        sentences.append(
            "Predictions average the class probabilities of each image and its horizontal flip "
            "(test-time augmentation). The explanations below explain the model without it."
        )
    return " ".join(sentences)


def _has_averaged_weights(checkpoint: Path) -> bool:
    """Return whether Lightning's weight averaging saved ``checkpoint`` (False if it cannot be read).

    Lightning's ``WeightAveraging`` callback stores the averaged weights as the state dict and
    keeps the trained ones under ``current_model_state``. The test run's own config cannot tell,
    because ``medxai test`` may load a checkpoint trained with other callbacks.
    """
    from medxai.checkpoints import load_checkpoint

    try:
        return AVERAGED_MARKER in load_checkpoint(checkpoint)
    except (OSError, ValueError):
        return False


def _per_class_table(per_class: Any) -> str:
    if not isinstance(per_class, list) or not per_class:
        return notice(f"{run_files.TEST_METRICS} has no 'per_class' list.")
    rows = [row for row in per_class if isinstance(row, dict)]
    columns = [key for key in _PER_CLASS_FIRST if any(key in row for row in rows)]
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return table(columns, [[row.get(key, "") for key in columns] for row in rows])


def _confusion_matrix(raw: Any, class_names: Sequence[str] | None) -> str:
    if raw is None:
        return notice(f"{run_files.TEST_METRICS} has no 'confusion_matrix'.")
    try:
        matrix = np.asarray(raw, dtype=np.int64)
    except (TypeError, ValueError) as err:
        return notice(f"The confusion matrix is not a square table of integers: {err}", error=True)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        message = f"The confusion matrix has shape {matrix.shape}, expected (K, K) with K > 0."
        return notice(message, error=True)

    num_classes = matrix.shape[0]
    names = list(class_names) if class_names and len(class_names) == num_classes else [
        str(index) for index in range(num_classes)
    ]
    header = ["true \\ predicted", *names, "total"]
    rows = [[names[row], *matrix[row].tolist(), int(matrix[row].sum())] for row in range(num_classes)]
    counts = table(header, rows)
    total = int(matrix.sum())
    correct = int(np.trace(matrix))
    caption = f"{total} test images, {correct} on the diagonal. Rows: true class; columns: predicted class."
    return image(plot_confusion_matrix(matrix, names), "Confusion matrix", caption=caption) + details(
        "Counts as a table", counts
    )
