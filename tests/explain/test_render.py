"""Figures: grayscale and RGB overlays, scaling for display, failed maps."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from medxai import io
from medxai.explain.render import method_grid, overlay, sample_figure, scale_map, summary_figure, to_rgb


def _gray_image() -> np.ndarray:
    # A horizontal ramp from black to white, (1, H, W).
    return np.tile(np.linspace(0.0, 1.0, 28, dtype=np.float32), (1, 28, 1))


def _heat() -> np.ndarray:
    heat = np.zeros((28, 28), dtype=np.float32)
    heat[10:18, 10:18] = 1.0
    return heat


def test_to_rgb_repeats_grayscale():
    rgb = to_rgb(_gray_image())
    assert rgb.shape == (28, 28, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])
    np.testing.assert_array_equal(rgb[..., 0], _gray_image()[0])


def test_to_rgb_rejects_channels_last():
    with pytest.raises(ValueError, match=r"Invalid image shape \(28, 28, 3\): expected \(1, H, W\) or \(3, H, W\)"):
        to_rgb(np.zeros((28, 28, 3)))


def test_overlay_without_heat_is_the_image():
    np.testing.assert_allclose(overlay(_gray_image(), _heat(), alpha=0.0), to_rgb(_gray_image()))
    blended = overlay(_gray_image(), _heat())
    assert blended.shape == (28, 28, 3)
    assert not np.allclose(blended[14, 14], to_rgb(_gray_image())[14, 14])


def test_grayscale_figure_shows_the_image(tmp_path):
    figure = sample_figure(_gray_image(), _heat(), signed=False, title="Grad-CAM #3 true: benign | predicted: malignant")

    image_panel = figure.axes[0].images[0]
    np.testing.assert_array_equal(np.asarray(image_panel.get_array()), _gray_image()[0])
    assert image_panel.get_cmap().name == "gray"
    assert image_panel.get_clim() == (0.0, 1.0)
    assert np.asarray(figure.axes[1].images[0].get_array()).shape == (28, 28, 3)

    path = io.save_figure(figure, tmp_path / "sample.png")
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3
    assert pixels.shape[2] in (3, 4)
    # The ramp spans black to white, so the PNG contains near-black and near-white gray pixels.
    gray = (np.abs(pixels[..., 0] - pixels[..., 1]) < 0.02) & (np.abs(pixels[..., 1] - pixels[..., 2]) < 0.02)
    assert (pixels[..., 0][gray] < 0.1).any()
    assert (pixels[..., 0][gray] > 0.9).any()


def test_rgb_figure_keeps_colours():
    image = np.zeros((3, 28, 28), dtype=np.float32)
    image[0] = 1.0  # pure red
    figure = sample_figure(image, _heat(), signed=False, title="red")
    np.testing.assert_array_equal(np.asarray(figure.axes[0].images[0].get_array())[0, 0], [1.0, 0.0, 0.0])


def test_scale_map_unsigned_and_signed():
    raw = np.array([[2.0, 4.0], [6.0, 10.0]], dtype=np.float32)
    np.testing.assert_allclose(scale_map(raw, signed=False), [[0.0, 0.25], [0.5, 1.0]])
    signed = scale_map(np.array([[-4.0, 1.0], [0.0, 2.0]], dtype=np.float32), signed=True)
    assert signed.min() >= 0.0
    assert signed.max() == pytest.approx(1.0)
    assert signed[0, 0] == pytest.approx(1.0)  # Negative evidence shows as heat too.
    np.testing.assert_array_equal(scale_map(np.ones((3, 3)), signed=False), np.zeros((3, 3)))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_scale_map_non_finite_is_none(value):
    raw = np.zeros((4, 4), dtype=np.float32)
    raw[1, 1] = value
    assert scale_map(raw, signed=False) is None


def test_failed_map_drawn_as_failed_panel():
    broken = np.full((28, 28), np.nan, dtype=np.float32)
    figure = method_grid([_gray_image()] * 2, [_heat(), broken], False, ["#0", "#1"], "Saliency")
    assert any("failed" in text.get_text() for text in figure.axes[1].texts)
    assert not figure.axes[0].texts


def test_summary_layout():
    images = [_gray_image()] * 3
    maps = {"Grad-CAM": ([_heat()] * 3, False), "Integrated Gradients": ([_heat() - 0.5] * 3, True)}
    figure = summary_figure(images, maps, ["a", "b", "c"])
    assert len(figure.axes) == 3 * 3
    assert [figure.axes[index].get_title() for index in range(3)] == ["image", "Grad-CAM", "Integrated Gradients"]
