"""Look up the target layer of layer attribution methods (Grad-CAM, Grad-CAM++) by module name."""

from __future__ import annotations

from torch import nn


def conv_layer_names(model: nn.Module) -> list[str]:
    """List the qualified names of every ``nn.Conv2d`` in ``model``, in registration order.

    Args:
        model: Any module, e.g. the backbone returned by ``build_resnet18``.

    Returns:
        Names as accepted by ``model.get_submodule``, e.g. ``["conv1", "layer1.0.conv1", ...]``.
    """
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule of ``model`` called ``name`` if it is or contains a ``nn.Conv2d``.

    The module must produce a spatial map ``(N, C, h, w)``, so it has to be a 2D convolution
    or a block that contains one (``"layer4"``, ``"layer4.1"``, ``"layer4.1.conv2"``).
    Pooling, normalisation and linear layers are rejected: Grad-CAM on them is not defined
    (``fc``, ``avgpool``) or can see in-place edits of the activations (``bn2`` before the
    residual ``+=`` of torchvision's ``BasicBlock``).

    Args:
        model: The module that will be explained.
        name: Qualified module name relative to ``model``.

    Returns:
        The submodule.

    Raises:
        ValueError: If ``name`` does not exist in ``model`` or contains no 2D convolution.
            The message lists the model's conv layers and the top-level blocks that contain them.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Invalid layer={name!r}. Expected a module name such as 'layer4'.")

    modules = dict(model.named_modules())
    module = modules.get(name)
    if module is None:
        raise ValueError(
            f"Unknown layer '{name}' in {type(model).__name__}. {_describe_choices(model)}"
        )
    if not any(isinstance(child, nn.Conv2d) for child in module.modules()):
        raise ValueError(
            f"Invalid layer '{name}' ({type(module).__name__}): it contains no Conv2d, so it "
            f"has no spatial map to explain. {_describe_choices(model)}"
        )
    return module


def _describe_choices(model: nn.Module) -> str:
    """Describe the layer names a user may pass, for error messages."""
    convs = conv_layer_names(model)
    if not convs:
        return f"{type(model).__name__} has no Conv2d layers, so layer methods cannot explain it."
    blocks = [
        name
        for name, child in model.named_children()
        if any(isinstance(module, nn.Conv2d) for module in child.modules())
    ]
    return f"Conv layers: {', '.join(convs)}. Top-level blocks containing them: {', '.join(blocks)}."
