"""attribution_mode: gradients on under inference mode, model restored afterwards."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from medxai.explain import attribution_mode, module_hook_count


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(2))


def test_gradients_enabled_under_inference_mode():
    model = nn.Linear(3, 1)
    with torch.inference_mode():
        x = torch.ones(2, 3)
        with attribution_mode(model):
            inputs = x.clone().requires_grad_(True)
            model(inputs).sum().backward()
            assert torch.is_grad_enabled()
            assert not torch.is_inference_mode_enabled()
        assert torch.is_inference_mode_enabled()
    assert inputs.grad is not None


def test_eval_inside_and_modes_restored():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5)).train()
    model[2].eval()
    with attribution_mode(model):
        assert not any(module.training for module in model.modules())
    assert [module.training for module in model] == [True, True, False]
    assert model.training


def test_requires_grad_and_grads_restored():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].weight.requires_grad_(False)
    model[1].bias.grad = torch.full_like(model[1].bias, 7.0)

    with attribution_mode(model, trainable=[model[1]]):
        assert [p.requires_grad for p in model[0].parameters()] == [False, False]
        assert [p.requires_grad for p in model[1].parameters()] == [True, True]
        model(torch.ones(1, 3)).sum().backward()
        model.zero_grad()

    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    assert model[1].weight.grad is None
    torch.testing.assert_close(model[1].bias.grad, torch.full_like(model[1].bias, 7.0))


def test_restored_after_exception():
    model = nn.Linear(2, 2).train()
    with pytest.raises(RuntimeError, match="boom"), attribution_mode(model):
        raise RuntimeError("boom")
    assert model.training
    assert model.weight.requires_grad


def test_leftover_hooks_removed_with_warning(caplog):
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    kept = model[0].register_forward_hook(lambda module, args, output: None)

    with caplog.at_level(logging.WARNING, logger="medxai.explain.grads"), attribution_mode(model):
        model[1].register_forward_hook(lambda module, args, output: None)
        model[1].register_full_backward_hook(lambda module, grad_in, grad_out: None)
        model[0].register_forward_pre_hook(lambda module, args: None, with_kwargs=True)

    assert module_hook_count(model) == 1
    assert len(model[0]._forward_hooks) == 1
    assert len(model[0]._forward_pre_hooks_with_kwargs) == 0
    assert "Removed 1 forward_hooks left on ReLU" in caplog.text
    kept.remove()
    assert module_hook_count(model) == 0
