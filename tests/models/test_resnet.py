import urllib.error

import pytest
import torch

from medxai.models import build_resnet18, resolve_stem


@pytest.mark.parametrize(("size", "stem"), [(28, "small"), (64, "small"), (128, "imagenet"), (224, "imagenet")])
def test_auto_stem_by_size(size: int, stem: str):
    assert resolve_stem("auto", size) == stem


def test_small_stem_keeps_spatial_layer4_map():
    model = build_resnet18(1, 2, image_size=28).eval()
    features = {}
    model.layer4.register_forward_hook(lambda module, inputs, output: features.setdefault("map", output))
    logits = model(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 2)
    assert features["map"].shape == (2, 512, 4, 4)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.conv1.kernel_size == (3, 3)


def test_imagenet_stem_for_large_inputs():
    model = build_resnet18(3, 8, image_size=224).eval()
    assert model.conv1.kernel_size == (7, 7)
    assert model(torch.rand(1, 3, 224, 224)).shape == (1, 8)


def test_grayscale_imagenet_stem_override():
    model = build_resnet18(1, 5, image_size=28, stem="imagenet")
    assert model.conv1.in_channels == 1
    assert model.conv1.kernel_size == (7, 7)


def test_invalid_arguments():
    with pytest.raises(ValueError, match=r"Invalid in_channels=2\. Expected 1 \(grayscale\) or 3 \(RGB\)"):
        build_resnet18(2, 2)
    with pytest.raises(ValueError, match=r"Invalid num_classes=1"):
        build_resnet18(1, 1)
    with pytest.raises(ValueError, match=r"Invalid stem 'tiny'\. Expected one of auto, small, imagenet"):
        build_resnet18(1, 2, stem="tiny")


def test_pretrained_grayscale_conv_from_rgb_kernels(monkeypatch: pytest.MonkeyPatch):
    # Offline stand-in for the ImageNet file: a reference ResNet-18 state dict.
    from torchvision.models import ResNet18_Weights, resnet18

    reference = resnet18().state_dict()
    monkeypatch.setattr(ResNet18_Weights, "get_state_dict", lambda self, *args, **kwargs: reference)
    model = build_resnet18(1, 2, image_size=224, pretrained=True)
    expected = reference["conv1.weight"].sum(dim=1, keepdim=True)
    assert torch.allclose(model.conv1.weight, expected)
    assert torch.allclose(model.layer1[0].conv1.weight, reference["layer1.0.conv1.weight"])


def test_pretrained_offline_error_names_cache(monkeypatch: pytest.MonkeyPatch, tmp_path):
    # Simulate having no network without sending any request.
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(RuntimeError, match=r"Cannot load ImageNet weights.*hub/checkpoints.*model\.pretrained=false"):
        build_resnet18(3, 2, pretrained=True)
