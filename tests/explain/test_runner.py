"""explain_images: several methods over uint8 images, with failures recorded per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medxai.explain.runner import SubsetResult, describe_non_finite, explain_images, merge_results
from tests.explain.helpers import MEAN, STD, NaNForNegativeCorner, make_split


def _preprocess(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255.0 - MEAN) / STD


def test_all_methods_ok(gray_model):
    images, labels = make_split(5, 1, 2)
    lines: list[str] = []

    result = explain_images(
        gray_model, images, labels, _preprocess, ["gradcam", "ig"], {"ig": {"n_steps": 4}},
        batch_size=2, report=lines.append,
    )

    assert result.maps["gradcam"].shape == (5, 28, 28)
    assert result.maps["ig"].dtype == np.float32
    assert result.failures == {"gradcam": [None] * 5, "ig": [None] * 5}
    assert result.deltas["ig"].shape == (5,)
    assert np.isfinite(result.deltas["ig"]).all()
    assert "gradcam" not in result.deltas
    with torch.no_grad():
        logits = gray_model(_preprocess(images))
    assert result.predictions.tolist() == logits.argmax(1).tolist()
    np.testing.assert_allclose(result.probabilities, torch.softmax(logits, 1).amax(1).numpy(), rtol=1e-5)
    assert result.targets.tolist() == result.predictions.tolist()
    assert len(lines) == 4
    assert lines[0].startswith("Grad-CAM: explaining 5 images")


def test_true_target(gray_model):
    images, labels = make_split(4, 1, 2)
    result = explain_images(gray_model, images, labels, _preprocess, ["saliency"], target="true")
    assert result.targets.tolist() == labels.tolist()


def test_raising_method_recorded_others_still_run(gray_model, caplog):
    images, labels = make_split(3, 1, 2)

    result = explain_images(gray_model, images, labels, _preprocess, ["gradcam", "saliency"], layer="layer7")

    assert all(reason.startswith("ValueError: Unknown layer 'layer7'") for reason in result.failures["gradcam"])
    assert np.isnan(result.maps["gradcam"]).all()
    assert result.failures["saliency"] == [None] * 3
    assert np.isfinite(result.maps["saliency"]).all()
    assert "Grad-CAM failed on images 0-2" in caplog.text


def test_nan_map_recorded_as_failed_not_replaced(gray_model):
    images, labels = make_split(4, 1, 2)
    images[1, 0, 0, 0] = 0  # Top-left pixel normalises to a negative value: NaN gradients.
    images[[0, 2, 3], 0, 0, 0] = 255
    model = NaNForNegativeCorner(gray_model)

    result = explain_images(model, images, labels, _preprocess, ["saliency", "gradcam"], layer="backbone.layer4")

    assert result.failures["saliency"][1] == "map has 1 NaN and 0 infinite values of 784"
    assert [result.failures["saliency"][i] for i in (0, 2, 3)] == [None, None, None]
    # The map is kept as computed: NaN at the corner, the gradient magnitudes elsewhere.
    assert np.isnan(result.maps["saliency"][1, 0, 0])
    assert np.isfinite(result.maps["saliency"][1, 1:]).all()
    assert result.maps["saliency"][1, 1:].max() > 0
    assert result.failures["gradcam"] == [None] * 4


def test_invalid_target_mode(gray_model):
    images, labels = make_split(2, 1, 2)
    with pytest.raises(ValueError, match=r"Invalid target='label'. Expected one of predicted, true"):
        explain_images(gray_model, images, labels, _preprocess, ["gradcam"], target="label")


def test_empty_shard(gray_model):
    images, labels = make_split(2, 1, 2)
    result = explain_images(gray_model, images[:0], labels[:0], _preprocess, ["gradcam"])
    assert result.maps["gradcam"].shape[0] == 0
    assert result.predictions.shape == (0,)


def test_merge_restores_subset_order(gray_model):
    images, labels = make_split(5, 1, 2)
    whole = explain_images(gray_model, images, labels, _preprocess, ["ig"], {"ig": {"n_steps": 4}})
    parts = [
        explain_images(
            gray_model, images[positions], labels[positions], _preprocess, ["ig"], {"ig": {"n_steps": 4}},
            positions=positions,
        )
        for positions in (torch.tensor([0, 2, 4]), torch.tensor([1, 3]), torch.zeros(0, dtype=torch.int64))
    ]

    merged = merge_results(parts)

    assert isinstance(merged, SubsetResult)
    assert merged.positions.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(merged.maps["ig"], whole.maps["ig"], atol=1e-5)
    np.testing.assert_allclose(merged.deltas["ig"], whole.deltas["ig"], atol=1e-5)
    assert merged.failures["ig"] == [None] * 5


def test_describe_non_finite():
    assert describe_non_finite(np.zeros((2, 2))) is None
    assert describe_non_finite(np.array([[np.nan, np.inf], [0.0, -np.inf]])) == "map has 1 NaN and 2 infinite values of 4"
