"""Figures of attribution maps: single overlays, a grid per method and a summary table.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot, so no global
figure state or GUI backend is involved. Save them with :func:`medxai.io.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Colormap of heatmaps.
HEATMAP_CMAP = "jet"
#: Percentile of ``|map|`` that maps to 1 for signed maps (IG), so a few extreme pixels do not
#: wash out the rest.
SIGNED_PERCENTILE = 99.0


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Convert one display image to an RGB array for matplotlib.

    Args:
        image: Float in [0, 1], ``(C, H, W)`` with C = 1 (grayscale, e.g. BreastMNIST) or 3.

    Returns:
        Float ``(H, W, 3)`` in [0, 1]; a grayscale image is repeated into the three channels.

    Raises:
        ValueError: If the image does not have 1 or 3 channels in the first axis.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"Invalid image shape {image.shape}: expected (1, H, W) or (3, H, W).")
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
    # (3, H, W) -> (H, W, 3), the layout matplotlib expects.
    return np.clip(np.transpose(rgb, (1, 2, 0)), 0.0, 1.0)


def scale_map(attribution: np.ndarray, signed: bool) -> np.ndarray | None:
    """Scale one map to [0, 1] for display.

    Args:
        attribution: Raw map, float ``(H, W)``.
        signed: ``False`` for maps >= 0 (Grad-CAM, Grad-CAM++, Saliency): min-max scaling.
            ``True`` for signed maps (IG): ``|map|`` divided by its 99th percentile and clipped
            to 1, so positive and negative evidence both show as heat.

    Returns:
        Float32 ``(H, W)`` in [0, 1] (all zeros for a constant map), or ``None`` when the map
        has NaN or infinite values: such a map is not drawn.
    """
    attribution = np.asarray(attribution, dtype=np.float32)
    if not np.isfinite(attribution).all():
        return None
    if signed:
        magnitude = np.abs(attribution)
        scale = float(np.percentile(magnitude, SIGNED_PERCENTILE))
        return np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)
    low, high = float(attribution.min()), float(attribution.max())
    if high <= low:
        return np.zeros_like(attribution)
    return (attribution - low) / (high - low)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a heatmap over an image.

    Args:
        image: Float in [0, 1], ``(C, H, W)`` with C = 1 or 3.
        heat: Scaled map, float ``(H, W)`` in [0, 1], e.g. from :func:`scale_map`.
        alpha: Weight of the heatmap colour; 0 shows the image only.

    Returns:
        Float RGB ``(H, W, 3)`` in [0, 1].
    """
    colours = matplotlib.colormaps[HEATMAP_CMAP](np.clip(heat, 0.0, 1.0))[..., :3]
    return np.clip((1.0 - alpha) * to_rgb(image) + alpha * colours, 0.0, 1.0)


def sample_figure(image: np.ndarray, attribution: np.ndarray, signed: bool, title: str) -> Figure:
    """Draw one image beside its heatmap overlay.

    Args:
        image: Display image, float ``(C, H, W)`` in [0, 1].
        attribution: Raw map, float ``(H, W)``.
        signed: Whether the map is signed, see :func:`scale_map`.
        title: Figure title, e.g. ``"Grad-CAM - true: malignant, predicted: benign (0.81)"``.

    Returns:
        A figure with two panels: the image and the overlay.
    """
    figure = Figure(figsize=(4.4, 2.8))
    image_axes, overlay_axes = figure.subplots(1, 2)
    figure.subplots_adjust(top=0.76)
    _draw_image(image_axes, image)
    _draw_overlay(overlay_axes, image, attribution, signed)
    image_axes.set_title("image", fontsize=8)
    overlay_axes.set_title("overlay", fontsize=8)
    figure.suptitle(title, fontsize=8)
    return figure


def method_grid(
    images: Sequence[np.ndarray],
    attributions: Sequence[np.ndarray],
    signed: bool,
    labels: Sequence[str],
    title: str,
    columns: int = 8,
) -> Figure:
    """Draw the overlays of one method for many images in a grid.

    Args:
        images: Display images, each float ``(C, H, W)`` in [0, 1].
        attributions: Raw maps, each float ``(H, W)``, one per image.
        signed: Whether the maps are signed, see :func:`scale_map`.
        labels: Caption per image, e.g. ``"#12 true: 1 pred: 0"``.
        title: Figure title, e.g. the method's name.
        columns: Panels per row.

    Returns:
        The figure; a map with NaN or infinite values is drawn as a "failed" panel.
    """
    count = max(len(images), 1)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    figure = Figure(figsize=(1.6 * columns, 1.75 * rows + 0.4))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).reshape(-1)
    for panel, image, attribution, label in zip(axes, images, attributions, labels):
        _draw_overlay(panel, image, attribution, signed)
        panel.set_title(label, fontsize=6)
    for panel in axes[len(images) :]:
        panel.set_axis_off()
    figure.suptitle(title, fontsize=9)
    return figure


def summary_figure(
    images: Sequence[np.ndarray],
    attributions: Mapping[str, tuple[Sequence[np.ndarray], bool]],
    row_labels: Sequence[str],
) -> Figure:
    """Draw a table of overlays: one row per image, columns = the image and then each method.

    Args:
        images: Display images, each float ``(C, H, W)`` in [0, 1].
        attributions: Method title -> (raw maps, one float ``(H, W)`` per image; signed).
        row_labels: Caption of each row, e.g. ``"#12 true: malignant / pred: benign"``.

    Returns:
        The figure.
    """
    rows = max(len(images), 1)
    columns = 1 + len(attributions)
    figure = Figure(figsize=(1.7 * columns, 1.7 * rows + 0.3))
    axes = figure.subplots(rows, columns, squeeze=False)
    for row, (image, label) in enumerate(zip(images, row_labels)):
        _draw_image(axes[row, 0], image)
        axes[row, 0].set_ylabel(label, fontsize=6)
        for column, (method_title, (maps, signed)) in enumerate(attributions.items(), start=1):
            _draw_overlay(axes[row, column], image, maps[row], signed)
            if row == 0:
                axes[row, column].set_title(method_title, fontsize=8)
    if images:
        axes[0, 0].set_title("image", fontsize=8)
    return figure


def _draw_image(axes: Axes, image: np.ndarray) -> None:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] == 1:
        # Grayscale: show the 2D array with a gray colormap on the full [0, 1] range, not the
        # (1, H, W) array, which matplotlib cannot show, nor an auto-scaled false colour.
        axes.imshow(image[0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        axes.imshow(to_rgb(image))
    _hide_ticks(axes)


def _draw_overlay(axes: Axes, image: np.ndarray, attribution: np.ndarray, signed: bool) -> None:
    heat = scale_map(attribution, signed)
    if heat is None:
        axes.imshow(to_rgb(image))
        axes.text(0.5, 0.5, "failed:\nnon-finite map", color="red", fontsize=7,
                  ha="center", va="center", transform=axes.transAxes)
    else:
        axes.imshow(overlay(image, heat))
    _hide_ticks(axes)


def _hide_ticks(axes: Axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
