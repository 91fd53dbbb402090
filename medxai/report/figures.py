"""Matplotlib figures drawn for the report and returned as PNG bytes to embed.

Figures are built with :class:`matplotlib.figure.Figure` directly rather than ``pyplot``, so no
GUI backend is touched and no global figure state leaks into a training process.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

_DPI = 110


def figure_to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def plot_scalar_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    title: str,
    ylabel: str,
) -> bytes:
    """Plot one line per TensorBoard tag against the global step.

    Args:
        curves: Tag name to ``(steps, values)``. A tag with a single point is drawn as a marker.
        title: Axes title.
        ylabel: Label of the y axis.

    Returns:
        The figure as PNG bytes.
    """
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    for tag, (steps, values) in sorted(curves.items()):
        # Per-step values are noisy, so they are drawn thinner behind the per-epoch ones.
        per_step = tag.endswith("_step") or tag.endswith("/step")
        ax.plot(
            steps,
            values,
            label=tag,
            marker="o" if len(steps) < 30 else None,
            markersize=3,
            linewidth=0.8 if per_step else 1.6,
            alpha=0.5 if per_step else 1.0,
        )
    ax.set_title(title)
    ax.set_xlabel("global step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return figure_to_png(fig)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str]) -> bytes:
    """Plot a confusion matrix with counts and row-normalised colours.

    Args:
        matrix: int array ``(K, K)``; rows are true classes, columns predicted classes.
        class_names: ``K`` names for the axes.

    Returns:
        The figure as PNG bytes.
    """
    num_classes = matrix.shape[0]
    row_sums = matrix.sum(axis=1, keepdims=True)
    # Colour by recall (share of each true class), so rare classes stay visible.
    shares = np.divide(matrix, row_sums, out=np.zeros(matrix.shape, dtype=float), where=row_sums > 0)

    side = min(9.0, 2.0 + 0.55 * num_classes)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    shown = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")

    for row in range(num_classes):
        for col in range(num_classes):
            color = "white" if shares[row, col] > 0.6 else "black"
            ax.text(col, row, str(int(matrix[row, col])), ha="center", va="center", color=color, fontsize=8)

    ax.set_xticks(range(num_classes), labels=list(class_names), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(num_classes), labels=list(class_names), fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (test)")
    return figure_to_png(fig)
