"""Target layer lookup by module name."""

from __future__ import annotations

import pytest
from torch import nn

from medxai.explain import conv_layer_names, resolve_layer


def test_conv_layer_names_of_resnet18(gray_model):
    names = conv_layer_names(gray_model)
    assert names[0] == "conv1"
    assert "layer4.1.conv2" in names
    assert "layer2.0.downsample.0" in names
    assert len(names) == 20  # 17 3x3 convs and 3 downsampling 1x1 convs.


@pytest.mark.parametrize("name", ["layer4", "layer4.1", "layer4.1.conv2", "conv1"])
def test_resolve_existing_layer(name, gray_model):
    assert resolve_layer(gray_model, name) is gray_model.get_submodule(name)


def test_unknown_layer_lists_conv_layers_and_blocks(gray_model):
    with pytest.raises(ValueError, match=r"Unknown layer 'layer9' in ResNet\. Conv layers: conv1, layer1\.0\.conv1") as info:
        resolve_layer(gray_model, "layer9")
    assert "layer4.1.conv2" in str(info.value)
    assert "Top-level blocks containing them: conv1, layer1, layer2, layer3, layer4." in str(info.value)


@pytest.mark.parametrize("name", ["fc", "avgpool", "layer4.1.bn2"])
def test_layer_without_conv_is_rejected(name, gray_model):
    with pytest.raises(ValueError, match=rf"Invalid layer '{name}' \(\w+\): it contains no Conv2d.*Conv layers: conv1"):
        resolve_layer(gray_model, name)


@pytest.mark.parametrize("name", ["", None])
def test_empty_layer_name(name, gray_model):
    with pytest.raises(ValueError, match=r"Invalid layer=.*Expected a module name such as 'layer4'"):
        resolve_layer(gray_model, name)


def test_model_without_convs():
    with pytest.raises(ValueError, match=r"Sequential has no Conv2d layers"):
        resolve_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), "1")
