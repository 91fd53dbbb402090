from __future__ import annotations

import numpy as np
import pytest
import quantus

from medxai.evaluation.mosaic import build_focus_mosaics, plan_focus_mosaics, tile_mosaics
from tests.evaluation.helpers import TinyNet


def _pool(count: int = 12, num_classes: int = 3, size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(count) % num_classes
    # Every pixel of image i has the value i, so tiles can be traced back to their source.
    images = np.broadcast_to(np.arange(count, dtype=np.float32)[:, None, None, None], (count, 1, size, size))
    return images.copy(), labels


def test_mosaic_layout_and_sources():
    images, labels = _pool()
    mosaics = build_focus_mosaics(images, labels, anchors=np.array([0, 4, 8]), seed=1)

    assert mosaics.images.shape == (3, 1, 8, 8)
    assert mosaics.images.dtype == np.float32
    np.testing.assert_array_equal(mosaics.targets, labels[[0, 4, 8]])
    np.testing.assert_array_equal(mosaics.positions.sum(axis=1), [2, 2, 2])
    for row, anchor in enumerate([0, 4, 8]):
        sources = mosaics.sources[row]
        assert anchor in sources
        assert len(set(sources.tolist())) == 4
        target_tiles = labels[sources] == labels[anchor]
        np.testing.assert_array_equal(target_tiles.astype(int), mosaics.positions[row])
        tiles = [mosaics.images[row, 0, :4, :4], mosaics.images[row, 0, :4, 4:],
                 mosaics.images[row, 0, 4:, :4], mosaics.images[row, 0, 4:, 4:]]
        for tile, source in zip(tiles, sources):
            assert np.all(tile == source)


def test_mosaics_are_seeded():
    images, labels = _pool()
    first = build_focus_mosaics(images, labels, anchors=np.arange(6), seed=3)
    second = build_focus_mosaics(images, labels, anchors=np.arange(6), seed=3)
    other = build_focus_mosaics(images, labels, anchors=np.arange(6), seed=4)
    np.testing.assert_array_equal(first.sources, second.sources)
    assert not np.array_equal(first.sources, other.sources)


def test_layout_matches_quantus_focus():
    images, labels = _pool()
    mosaics = build_focus_mosaics(images, labels, anchors=np.arange(6), seed=0)
    # A map that is 1 exactly on the tiles of the explained class must score 1; its complement 0.
    on_target = np.zeros((6, 1, 8, 8), dtype=np.float32)
    for row, flags in enumerate(mosaics.positions):
        for flag, (top, left) in zip(flags, [(0, 0), (0, 4), (4, 0), (4, 4)]):
            on_target[row, 0, top : top + 4, left : left + 4] = flag
    focus = quantus.Focus(disable_warnings=True)
    model = TinyNet().eval()  # Focus insists on a model even when the maps are given.
    kwargs = {"model": model, "x_batch": mosaics.images, "y_batch": mosaics.targets, "custom_batch": mosaics.positions}
    hit = focus(a_batch=on_target, **kwargs)
    miss = focus(a_batch=1.0 - on_target, **kwargs)
    np.testing.assert_allclose(hit, 1.0, atol=1e-6)
    np.testing.assert_allclose(miss, 0.0, atol=1e-6)


def test_too_few_images_of_a_class():
    images, labels = _pool(count=4, num_classes=4)
    with pytest.raises(ValueError, match="Cannot build a Focus mosaic for class 0"):
        build_focus_mosaics(images, labels, anchors=np.array([0]))


def test_invalid_anchor_and_shapes():
    images, labels = _pool()
    with pytest.raises(ValueError, match=r"Invalid anchors: indices must lie in \[0, 11\]"):
        build_focus_mosaics(images, labels, anchors=np.array([12]))
    with pytest.raises(ValueError, match="pool_labels has 3 entries but pool_images has 12"):
        build_focus_mosaics(images, labels[:3], anchors=np.array([0]))
    with pytest.raises(ValueError, match=r"Expected \(P, C, H, W\)"):
        build_focus_mosaics(images[:, 0], labels, anchors=np.array([0]))


def test_plan_then_tile_equals_build():
    images, labels = _pool()
    built = build_focus_mosaics(images, labels, anchors=np.arange(5), seed=2)
    sources, positions = plan_focus_mosaics(labels, np.arange(5), seed=2)
    np.testing.assert_array_equal(sources, built.sources)
    np.testing.assert_array_equal(positions, built.positions)
    np.testing.assert_array_equal(tile_mosaics(images, sources), built.images)
