from __future__ import annotations

import numpy as np
import pytest

from medxai.data.synthetic import SYNTHETIC_INFO, make_known_signal, shape_extent, shape_stencil, synthetic_info

SPLITS = ("train", "val", "test")


def test_keys_shapes_and_dtypes():
    arrays = make_known_signal(6, 4, 5)
    for split, count in zip(SPLITS, (6, 4, 5)):
        assert arrays[f"{split}_images"].shape == (count, 28, 28)
        assert arrays[f"{split}_images"].dtype == np.uint8
        assert arrays[f"{split}_labels"].shape == (count, 1)
        assert arrays[f"{split}_labels"].dtype == np.uint8
        assert arrays[f"{split}_masks"].shape == (count, 28, 28)
        assert arrays[f"{split}_masks"].dtype == bool


def test_rgb_and_larger_size():
    arrays = make_known_signal(2, 0, 2, size=64, channels=3)
    assert arrays["train_images"].shape == (2, 64, 64, 3)
    assert arrays["val_images"].shape == (0, 64, 64, 3)
    assert arrays["test_masks"].shape == (2, 64, 64)


def test_balanced_labels():
    labels = make_known_signal(101, 0, 0)["train_labels"][:, 0]
    assert set(np.unique(labels).tolist()) == {0, 1}
    assert abs(int((labels == 0).sum()) - int((labels == 1).sum())) <= 1


def test_mask_is_bounding_square_of_bright_shape():
    arrays = make_known_signal(0, 0, 20, seed=3)
    extent = shape_extent(28)
    for image, mask, label in zip(arrays["test_images"], arrays["test_masks"], arrays["test_labels"][:, 0]):
        rows, cols = np.nonzero(mask)
        assert mask.sum() == extent * extent
        assert rows.max() - rows.min() + 1 == extent
        # A one-pixel margin keeps the shape inside the image.
        assert rows.min() >= 1
        assert cols.min() >= 1
        assert rows.max() <= 26
        assert cols.max() <= 26
        window = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        stencil = shape_stencil(int(label), extent)
        assert window[stencil].mean() > 180
        assert image[~mask].mean() < 100


def test_shapes_equal_pixel_count():
    plus, cross = shape_stencil(1, 7), shape_stencil(0, 7)
    assert plus.sum() == cross.sum()
    assert not np.array_equal(plus, cross)


def test_seeded_and_splits_independent():
    first = make_known_signal(10, 2, 8, seed=5)
    second = make_known_signal(10, 2, 8, seed=5)
    more_train = make_known_signal(30, 2, 8, seed=5)
    other_seed = make_known_signal(10, 2, 8, seed=6)
    np.testing.assert_array_equal(first["test_images"], second["test_images"])
    np.testing.assert_array_equal(first["test_images"], more_train["test_images"])
    assert not np.array_equal(first["test_images"], other_seed["test_images"])


def test_info_shaped_like_medmnist():
    for key in ("task", "label", "n_channels", "n_samples", "description"):
        assert key in SYNTHETIC_INFO
    assert SYNTHETIC_INFO["task"] == "binary-class"
    assert SYNTHETIC_INFO["label"] == {"0": "diagonal cross", "1": "plus"}
    info = synthetic_info(10, 2, 8, channels=3)
    assert info["n_samples"] == {"train": 10, "val": 2, "test": 8}
    assert info["n_channels"] == 3
    assert SYNTHETIC_INFO["n_channels"] == 1


def test_invalid_arguments():
    with pytest.raises(ValueError, match="Invalid num_val=-1"):
        make_known_signal(1, -1, 1)
    with pytest.raises(ValueError, match="Invalid size=8"):
        make_known_signal(1, 1, 1, size=8)
    with pytest.raises(ValueError, match="Invalid channels=2"):
        make_known_signal(1, 1, 1, channels=2)
