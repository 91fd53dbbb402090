from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from medxai.evaluation import QuantusExplainFunc
from tests.evaluation.helpers import TinyNet, synthetic_test_batch


@pytest.fixture(scope="module")
def batch():
    x, y, _ = synthetic_test_batch(4)
    return x, y


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "ig", "saliency"])
def test_returns_numpy_maps(method, batch):
    x, y = batch
    options = {"n_steps": 4} if method == "ig" else None
    maps = QuantusExplainFunc(method, options=options)(TinyNet().eval(), x, y)
    assert isinstance(maps, np.ndarray)
    assert maps.dtype == np.float32
    assert maps.shape == (4, 1, 28, 28)
    assert np.isfinite(maps).all()


def test_uses_model_it_receives(batch):
    x, y = batch
    func = QuantusExplainFunc("saliency")
    model = TinyNet(seed=0).eval()
    randomised = copy.deepcopy(model)
    torch.nn.init.normal_(randomised.layer1[0].weight)
    first = func(model, x, y)
    again = func(model, x, y)
    other = func(randomised, x, y)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_device_keyword_ignored_and_options_passed(batch):
    x, y = batch
    func = QuantusExplainFunc("ig", options={"n_steps": 4})
    model = TinyNet().eval()
    with_device = func(model, x, y, device="cpu")
    more_steps = func(model, x, y, n_steps=8)
    np.testing.assert_array_equal(with_device, func(model, x, y))
    assert not np.array_equal(with_device, more_steps)


def test_works_under_inference_mode(batch):
    x, y = batch
    model = TinyNet().eval()
    with torch.inference_mode():
        maps = QuantusExplainFunc("gradcam")(model, x, y)
    assert maps.shape == (4, 1, 28, 28)
    assert not model.training


def test_invalid_method_and_option():
    with pytest.raises(ValueError, match="Unknown method 'nope'"):
        QuantusExplainFunc("nope")
    with pytest.raises(ValueError, match="Invalid option"):
        QuantusExplainFunc("gradcam", options={"n_steps": 3})
