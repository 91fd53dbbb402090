"""explain / explain_batched: shapes, agreement with references, completeness, model state."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from medxai.explain import METHODS, explain, explain_batched, module_hook_count
from medxai.models import build_resnet18
from tests.explain.conftest import normalised_batch

FAST_OPTIONS = {"ig": {"n_steps": 8}}
# Completeness tolerance of IG: |sum(map) - (f(x) - f(baseline))| <= 3% of |f(x) - f(baseline)|
# + 1e-3 with 128 Gauss-Legendre steps. ReLU kinks along the path slow the convergence: on these
# random ResNet-18s the largest relative error was 0.1-1.9% at 128 steps.
IG_STEPS = 128
IG_RELATIVE_TOLERANCE = 0.03
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _min_max(maps: np.ndarray) -> np.ndarray:
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(axis=1, keepdims=True)
    high = flat.max(axis=1, keepdims=True)
    return ((flat - low) / (high - low)).reshape(maps.shape)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("fixture", ["gray", "rgb"])
def test_maps_shape_dtype_finite(method, fixture, request):
    model = request.getfixturevalue(f"{fixture}_model")
    x, labels = request.getfixturevalue(f"{fixture}_batch")
    target = labels % 2

    maps = explain(model, x, target, method=method, layer="layer4", **FAST_OPTIONS.get(method, {}))

    assert maps.shape == (4, 1, 28, 28)
    assert maps.dtype == torch.float32
    assert maps.device == x.device
    assert torch.isfinite(maps).all()
    if not METHODS[method].signed:
        assert (maps >= 0).all()
    assert maps.flatten(1).abs().amax(dim=1).gt(0).all(), "every map has some signal"


def _predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def test_gradcam_captum_matches_pytorch_grad_cam(rgb_model, rgb_batch):
    x, _ = rgb_batch
    labels = _predicted(rgb_model, x)

    ours = explain(rgb_model, x, labels, method="gradcam", layer="layer4")[:, 0].numpy()
    with GradCAM(model=rgb_model, target_layers=[rgb_model.layer4]) as reference_cam:
        reference = reference_cam(x, [ClassifierOutputTarget(int(label)) for label in labels])

    assert (ours.max(axis=(1, 2)) > ours.min(axis=(1, 2))).all(), "constant maps cannot be compared"
    # pytorch-grad-cam min-max scales each map (then resizes with OpenCV); compare on that scale.
    np.testing.assert_allclose(_min_max(ours), reference, atol=1e-4)
    for ours_map, reference_map in zip(ours, reference):
        assert np.corrcoef(ours_map.ravel(), reference_map.ravel())[0, 1] > 0.9999


def test_gradcampp_matches_library_output(rgb_model, rgb_batch):
    x, _ = rgb_batch
    labels = _predicted(rgb_model, x)

    ours = explain(rgb_model, x, labels, method="gradcampp", layer="layer3")[:, 0].numpy()
    with GradCAMPlusPlus(model=rgb_model, target_layers=[rgb_model.layer3]) as reference_cam:
        reference = reference_cam(x, [ClassifierOutputTarget(int(label)) for label in labels])

    np.testing.assert_allclose(_min_max(ours), reference, atol=1e-4)


def test_gradcam_and_gradcampp_differ(rgb_model, rgb_batch):
    x, labels = rgb_batch
    gradcam = explain(rgb_model, x, labels, method="gradcam")
    gradcampp = explain(rgb_model, x, labels, method="gradcampp")
    assert not torch.allclose(gradcam, gradcampp)


def test_ig_completeness_and_delta(rgb_model, rgb_batch):
    x, labels = rgb_batch

    result = explain_batched(rgb_model, x, labels, method="ig", n_steps=IG_STEPS, baseline="zeros")

    with torch.no_grad():
        rows = torch.arange(len(labels))
        difference = rgb_model(x)[rows, labels] - rgb_model(torch.zeros_like(x))[rows, labels]
    attribution_sums = result.maps.sum(dim=(1, 2, 3))
    delta = result.convergence_delta
    assert delta is not None
    assert delta.shape == (4,)
    # Captum's delta is sum(attributions) - (f(x) - f(baseline)); summing channels keeps it.
    torch.testing.assert_close(delta, attribution_sums - difference, atol=1e-4, rtol=0)
    tolerance = IG_RELATIVE_TOLERANCE * difference.abs() + 1e-3
    assert (attribution_sums - difference).abs().le(tolerance).all(), (attribution_sums, difference)


def test_ig_mean_baseline_completeness(gray_model, gray_batch):
    x, labels = gray_batch[0][:2], gray_batch[1][:2]
    baseline = x.mean(dim=(2, 3), keepdim=True).expand_as(x)

    result = explain_batched(gray_model, x, labels, method="ig", n_steps=IG_STEPS, baseline="mean")

    with torch.no_grad():
        rows = torch.arange(len(labels))
        difference = gray_model(x)[rows, labels] - gray_model(baseline)[rows, labels]
    tolerance = IG_RELATIVE_TOLERANCE * difference.abs() + 1e-3
    assert (result.maps.sum(dim=(1, 2, 3)) - difference).abs().le(tolerance).all()


def test_saliency_is_max_abs_input_gradient(gray_model, gray_batch):
    x, labels = gray_batch
    model = build_resnet18(3, 4).eval()
    rgb = torch.randn(3, 3, 28, 28)
    target = torch.tensor([0, 3, 1])

    inputs = rgb.clone().requires_grad_(True)
    model(inputs)[torch.arange(3), target].sum().backward()
    reference = inputs.grad.abs().amax(dim=1, keepdim=True)
    for param in model.parameters():
        param.grad = None

    torch.testing.assert_close(explain(model, rgb, target, method="saliency"), reference)


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "ig", "saliency"])
def test_batched_equals_single_call(method, rgb_model):
    x, labels = normalised_batch(5, 3, 5, seed=3)
    options = FAST_OPTIONS.get(method, {})

    whole = explain_batched(rgb_model, x, labels, method, batch_size=None, **options)
    pieces = explain_batched(rgb_model, x, labels, method, batch_size=2, **options)

    torch.testing.assert_close(pieces.maps, whole.maps, atol=1e-5, rtol=1e-4)


def test_ig_internal_batch_size_limits_batches(gray_model, gray_batch):
    x, labels = gray_batch
    whole = explain_batched(gray_model, x, labels, "ig", n_steps=8)
    chunked = explain_batched(gray_model, x, labels, "ig", n_steps=8, internal_batch_size=6)
    torch.testing.assert_close(chunked.maps, whole.maps, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("inference", [False, True])
def test_model_left_as_found(method, inference):
    torch.manual_seed(0)
    model = build_resnet18(1, 2).train()
    model.layer1.eval()  # A mixed state must come back as it was, module by module.
    model.conv1.weight.requires_grad_(False)
    model.fc.bias.grad = torch.ones_like(model.fc.bias)
    running_mean = model.bn1.running_mean.clone()
    training_before = {name: module.training for name, module in model.named_modules()}
    requires_grad_before = {name: param.requires_grad for name, param in model.named_parameters()}
    x, labels = normalised_batch(3, 1, 2)

    if inference:
        with torch.inference_mode():
            maps = explain(model, x, labels, method=method, **FAST_OPTIONS.get(method, {}))
    else:
        maps = explain(model, x, labels, method=method, **FAST_OPTIONS.get(method, {}))

    assert torch.isfinite(maps).all()
    assert {name: module.training for name, module in model.named_modules()} == training_before
    assert {name: param.requires_grad for name, param in model.named_parameters()} == requires_grad_before
    for module in model.modules():
        for attr in HOOK_DICTS:
            assert len(getattr(module, attr)) == 0, f"{attr} left on {type(module).__name__}"
    assert module_hook_count(model) == 0
    torch.testing.assert_close(model.fc.bias.grad, torch.ones_like(model.fc.bias))
    assert all(param.grad is None for name, param in model.named_parameters() if name != "fc.bias")
    torch.testing.assert_close(model.bn1.running_mean, running_mean)


def test_eval_mode_used_while_explaining():
    x, labels = normalised_batch(4, 1, 2)
    model = build_resnet18(1, 2)
    expected = explain(model.eval(), x, labels, method="saliency")
    # The same model in train mode must give the eval-mode maps, not batch-statistics maps.
    torch.testing.assert_close(explain(model.train(), x, labels, method="saliency"), expected)
    assert model.training


def test_randomised_deep_copy_is_explained(rgb_model, rgb_batch):
    x, labels = rgb_batch
    copy_model = copy.deepcopy(rgb_model)
    with torch.no_grad():
        for param in copy_model.layer4.parameters():
            param.normal_()

    original = explain(rgb_model, x, labels, method="gradcam")
    randomised = explain(copy_model, x, labels, method="gradcam")

    assert randomised.shape == original.shape
    assert not torch.allclose(original, randomised)


def test_int_target_and_empty_input(gray_model, gray_batch):
    x, _ = gray_batch
    assert explain(gray_model, x, 1, method="gradcam").shape == (4, 1, 28, 28)
    empty = explain_batched(gray_model, x[:0], torch.zeros(0, dtype=torch.int64), "ig")
    assert empty.maps.shape == (0, 1, 28, 28)
    assert empty.convergence_delta is not None
    assert empty.convergence_delta.shape == (0,)


def test_unknown_method(gray_model, gray_batch):
    x, labels = gray_batch
    with pytest.raises(ValueError, match=r"Unknown method 'lime'. Expected one of gradcam, gradcampp, ig, saliency"):
        explain(gray_model, x, labels, method="lime")


def test_unknown_layer_lists_conv_layers(gray_model, gray_batch):
    x, labels = gray_batch
    with pytest.raises(ValueError, match=r"Unknown layer 'layer5' in ResNet\. Conv layers: conv1, layer1\.0\.conv1"):
        explain(gray_model, x, labels, method="gradcam", layer="layer5")


def test_layer_ignored_by_input_methods(gray_model, gray_batch):
    x, labels = gray_batch
    assert explain(gray_model, x, labels, method="saliency", layer="no_such_layer").shape == (4, 1, 28, 28)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 4}, r"Invalid option\(s\) steps for method 'ig'. Accepted: n_steps, baseline"),
        ({"n_steps": 0}, r"Invalid n_steps=0 for method 'ig'"),
        ({"internal_batch_size": 0}, r"Invalid internal_batch_size=0 for method 'ig'"),
        ({"baseline": "noise"}, r"Invalid baseline='noise' for method 'ig'. Expected one of zeros, black"),
        ({"rule": "simpson"}, r"Invalid rule='simpson' for method 'ig'"),
        ({"baseline": "black"}, r"baseline='black' needs preprocess"),
        ({"baseline": torch.zeros(2, 28, 28)}, r"Invalid baseline tensor of shape \(2, 28, 28\)"),
    ],
)
def test_invalid_ig_options(options, message, gray_model, gray_batch):
    x, labels = gray_batch
    with pytest.raises(ValueError, match=message):
        explain(gray_model, x, labels, method="ig", **options)


def test_option_rejected_by_method_without_options(gray_model, gray_batch):
    x, labels = gray_batch
    with pytest.raises(ValueError, match=r"Invalid option\(s\) n_steps for method 'gradcam'. Accepted: none"):
        explain(gray_model, x, labels, method="gradcam", n_steps=4)


def test_black_baseline_uses_preprocess(gray_model, gray_batch):
    x, labels = gray_batch

    def preprocess(images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - 0.4) / 0.25

    black = explain(gray_model, x, labels, method="ig", n_steps=8, baseline="black", preprocess=preprocess)
    constant = explain(gray_model, x, labels, method="ig", n_steps=8, baseline=-1.6)
    torch.testing.assert_close(black, constant)


@pytest.mark.parametrize(
    ("x", "target", "message"),
    [
        (torch.zeros(2, 28, 28), torch.zeros(2, dtype=torch.int64), r"Invalid x: expected a float tensor"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), r"Invalid x"),
        (torch.zeros(2, 1, 28, 28), torch.zeros(3, dtype=torch.int64), r"Invalid target shape \(3,\): expected \(2,\)"),
        (torch.zeros(2, 1, 28, 28), torch.zeros(2), r"Invalid target: expected an int64 tensor"),
        (torch.zeros(2, 1, 28, 28), torch.tensor([0, -1]), r"class indices must be >= 0, got -1"),
    ],
)
def test_invalid_inputs(x, target, message, gray_model):
    with pytest.raises(ValueError, match=message):
        explain(gray_model, x, target, method="gradcam")


def test_invalid_batch_size(gray_model, gray_batch):
    x, labels = gray_batch
    with pytest.raises(ValueError, match=r"Invalid batch_size=0"):
        explain_batched(gray_model, x, labels, "gradcam", batch_size=0)


def test_nan_map_is_returned_not_replaced(gray_model):
    class NaNModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return gray_model(x) * self.scale + 0.0 * torch.sqrt(x[:, :1, 0, 0])

    x, labels = normalised_batch(2, 1, 2)
    x[0, 0, 0, 0] = -1.0
    x[1, 0, 0, 0] = 1.0

    maps = explain(NaNModel(), x, labels, method="saliency")

    assert torch.isnan(maps[0]).any()
    assert torch.isfinite(maps[1]).all()
