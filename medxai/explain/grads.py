"""Turn gradients on for attribution and give the model back exactly as it was found."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)

# Per-module hook dictionaries of torch.nn.Module, keyed by the id of each RemovableHandle.
_HOOK_DICTS: tuple[str, ...] = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)
# Side tables that torch keys by the same handle ids (kwargs and always-called flags).
_HOOK_SIDE_TABLES: tuple[str, ...] = (
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)


def module_hook_count(model: nn.Module) -> int:
    """Count the forward and backward hooks registered on ``model`` and all its submodules."""
    return sum(len(getattr(module, attr, {})) for module in model.modules() for attr in _HOOK_DICTS)


@contextlib.contextmanager
def attribution_mode(model: nn.Module, trainable: Iterable[nn.Module] = ()) -> Iterator[nn.Module]:
    """Prepare ``model`` for gradient-based attribution and restore it on exit.

    Inside the block:

    * gradients are on even under ``torch.inference_mode`` or ``torch.no_grad``, because
      Lightning runs ``test`` under inference mode, where autograd records nothing;
    * every module is in eval mode, so BatchNorm uses its running statistics and leaves them
      unchanged, and Dropout is off;
    * every parameter has ``requires_grad=False`` except those of the ``trainable`` modules,
      so backward computes no weight gradients that attribution does not need.

    On exit, even after an exception, each module's ``training`` flag and each parameter's
    ``requires_grad`` and ``.grad`` are set back to their values on entry. Any module hook added
    inside the block and not removed by its owner is removed with a warning.

    Tensors created under inference mode cannot be recorded by autograd: clone the inputs
    inside the block (``x = x.clone()``) before attributing.

    Args:
        model: The module to explain.
        trainable: Submodules whose parameters must require grad inside the block, e.g. the
            target layer of a method whose library needs that layer's output to require grad.

    Yields:
        ``model`` itself.
    """
    modules = list(model.modules())
    training_flags = [module.training for module in modules]
    parameters = list(model.parameters())
    requires_grad_flags = [param.requires_grad for param in parameters]
    saved_grads = [param.grad for param in parameters]
    hook_ids = [{attr: set(getattr(module, attr, {})) for attr in _HOOK_DICTS} for module in modules]
    trainable_ids = {id(param) for module in trainable for param in module.parameters()}

    # Lightning's test loop runs under inference_mode, which disables autograd entirely;
    # attribution needs gradients, so both modes are switched explicitly here.
    with torch.inference_mode(False), torch.enable_grad():
        try:
            model.eval()
            for param in parameters:
                param.requires_grad_(id(param) in trainable_ids)
                # Set aside, so that a backward pass inside cannot accumulate into the saved tensor.
                param.grad = None
            yield model
        finally:
            for module, flag in zip(modules, training_flags):
                module.training = flag
            for param, flag, grad in zip(parameters, requires_grad_flags, saved_grads):
                param.requires_grad_(flag)
                param.grad = grad
            _remove_new_hooks(modules, hook_ids)


def _remove_new_hooks(modules: list[nn.Module], hook_ids: list[dict[str, set[int]]]) -> None:
    """Remove hooks that were registered after ``hook_ids`` was recorded."""
    for module, before in zip(modules, hook_ids):
        for attr in _HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if not hooks:
                continue
            leftover = [key for key in hooks if key not in before[attr]]
            for key in leftover:
                del hooks[key]
                for table in _HOOK_SIDE_TABLES:
                    getattr(module, table, {}).pop(key, None)
            if leftover:
                log.warning(
                    "Removed %d %s left on %s by an attribution method.",
                    len(leftover),
                    attr.lstrip("_"),
                    type(module).__name__,
                )
