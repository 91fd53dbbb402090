"""Registry of attribution methods, each computing maps for a whole batch at once.

Every method takes normalised inputs ``x`` float ``(N, C, H, W)``, a target class per input
``(N,)`` and returns one raw map per input, float32 ``(N, 1, H, W)``. Layer methods return the
ReLU'd layer map upsampled bilinearly to ``(H, W)``. Input methods reduce the channels: IG sums
them, Saliency takes the maximum absolute gradient. Maps are not normalised: scaling for
display lives in :mod:`medxai.explain.render`.

The functions here run inside :func:`medxai.explain.grads.attribution_mode`; call them through
:func:`medxai.explain.explain` or :func:`medxai.explain.explain_batched`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from torch import Tensor, nn

from medxai.explain.baselines import BASELINES, make_baseline
from medxai.explain.cams import RawGradCAMPlusPlus, RawLayerCAM, run_raw_cam

#: Quadrature rules of Captum's IntegratedGradients.
IG_RULES: tuple[str, ...] = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")

#: Default number of scaled inputs per IG forward/backward pass. Memory grows with it, by an
#: estimated 5 MB per scaled input for ResNet-18 at 28 px (from peak resident memory). On a
#: 2-core CPU, passes of 200-400 inputs were slower per input than passes of 32-64
#: (benchmarks/bench_explain.py), so not all ``N * n_steps`` inputs run at once.
IG_INTERNAL_BATCH_SIZE = 64

# Signature of one method on one batch: (model, x, target, layer, **options) -> (maps, delta).
BatchAttribution = Callable[..., tuple[Tensor, Tensor | None]]


@dataclass(frozen=True)
class Method:
    """An attribution method and the facts callers need about it.

    Attributes:
        name: Registry key, e.g. ``"gradcam"``.
        title: Name for figures and tables, e.g. ``"Grad-CAM"``.
        reference: Authors, title and venue of the paper the method follows.
        library: The library that computes it.
        uses_layer: Whether it explains a layer (needs ``layer``) rather than the input.
        trains_layer: Whether the target layer's parameters must require grad while it runs
            (pytorch-grad-cam records gradients only of layer outputs that require grad).
        signed: Whether maps can be negative (IG); unsigned maps are >= 0.
        attribute: The batch function.
        defaults: Options the method accepts, with their default values.
    """

    name: str
    title: str
    reference: str
    library: str
    uses_layer: bool
    trains_layer: bool
    signed: bool
    attribute: BatchAttribution = field(repr=False)
    defaults: Mapping[str, Any] = field(default_factory=dict)


def _gradcam(model: nn.Module, x: Tensor, target: Tensor, layer: nn.Module) -> tuple[Tensor, None]:
    """Grad-CAM (Selvaraju et al., ICCV 2017) with Captum's LayerGradCam.

    Follows the paper: channel weights are the spatial mean of the target logit's gradient,
    the weighted sum of activations goes through a ReLU. The map is upsampled bilinearly
    (``align_corners=False``) with ``LayerAttribution.interpolate`` and not normalised.
    """
    layer_maps = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(layer_maps, tuple(x.shape[-2:]), interpolate_mode="bilinear"), None


def _gradcampp(model: nn.Module, x: Tensor, target: Tensor, layer: nn.Module) -> tuple[Tensor, None]:
    """Grad-CAM++ (Chattopadhyay et al., WACV 2018) with pytorch-grad-cam's GradCAMPlusPlus.

    The channel weights use the paper's closed form for the alphas (its eq. 19: powers of the
    first-order gradient of the logit, exact when the score is an exponential of the logit),
    with pytorch-grad-cam's 1e-6 added to the denominator. Departures from the library: maps
    are neither min-max scaled nor resized with OpenCV, but upsampled bilinearly as Grad-CAM.
    """
    return run_raw_cam(RawGradCAMPlusPlus, model, layer, x, target), None


def _layercam(model: nn.Module, x: Tensor, target: Tensor, layer: nn.Module) -> tuple[Tensor, None]:
    """LayerCAM (Jiang et al., IEEE TIP 2021) with pytorch-grad-cam's LayerCAM.

    Each activation is weighted by its own positive gradient, then channels are summed and a
    ReLU applied. Same departures from the library as Grad-CAM++ (unscaled, bilinear).
    """
    return run_raw_cam(RawLayerCAM, model, layer, x, target), None


def _integrated_gradients(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    layer: nn.Module | None,
    n_steps: int = 50,
    baseline: str | float | Tensor = "zeros",
    internal_batch_size: int | None = IG_INTERNAL_BATCH_SIZE,
    rule: str = "gausslegendre",
    preprocess: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Integrated Gradients (Sundararajan et al., ICML 2017) with Captum.

    The path integral from the baseline to ``x`` is approximated with ``n_steps`` points of
    ``rule``; Captum's default Gauss-Legendre rule replaces the paper's Riemann sum. The
    attributions ``(N, C, H, W)`` are summed over channels, so each map still sums to
    ``f(x) - f(baseline)`` (completeness) up to the returned convergence delta, which is
    ``sum(attributions) - (f(x) - f(baseline))`` per input, float ``(N,)``.
    """
    reference = make_baseline(baseline, x, preprocess)
    attributions, delta = IntegratedGradients(model).attribute(
        x,
        baselines=reference,
        target=target,
        n_steps=n_steps,
        method=rule,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    return attributions.sum(dim=1, keepdim=True), delta


def _saliency(model: nn.Module, x: Tensor, target: Tensor, layer: nn.Module | None) -> tuple[Tensor, None]:
    """Saliency (Simonyan et al., ICLR workshop 2014) with Captum's Saliency.

    As in the paper, the map is the maximum over channels of the absolute gradient of the
    target logit with respect to the input.
    """
    x.requires_grad_(True)  # Set here so that Captum does not warn that it had to.
    gradients = Saliency(model).attribute(x, target=target, abs=True)
    return gradients.amax(dim=1, keepdim=True), None


_REGISTRY: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            name="gradcam",
            title="Grad-CAM",
            reference="Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via "
            "Gradient-based Localization, ICCV 2017",
            library="captum",
            uses_layer=True,
            trains_layer=False,
            signed=False,
            attribute=_gradcam,
        ),
        Method(
            name="gradcampp",
            title="Grad-CAM++",
            reference="Chattopadhyay et al., Grad-CAM++: Generalized Gradient-based Visual "
            "Explanations for Deep Convolutional Networks, WACV 2018",
            library="pytorch-grad-cam",
            uses_layer=True,
            trains_layer=True,
            signed=False,
            attribute=_gradcampp,
        ),
        Method(
            name="ig",
            title="Integrated Gradients",
            reference="Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017",
            library="captum",
            uses_layer=False,
            trains_layer=False,
            signed=True,
            defaults=MappingProxyType(
                {
                    "n_steps": 50,
                    "baseline": "zeros",
                    "internal_batch_size": IG_INTERNAL_BATCH_SIZE,
                    "rule": "gausslegendre",
                    "preprocess": None,
                }
            ),
            attribute=_integrated_gradients,
        ),
        Method(
            name="saliency",
            title="Saliency",
            reference="Simonyan et al., Deep Inside Convolutional Networks: Visualising Image "
            "Classification Models and Saliency Maps, ICLR workshop 2014",
            library="captum",
            uses_layer=False,
            trains_layer=False,
            signed=False,
            attribute=_saliency,
        ),
        Method(
            name="layercam",
            title="LayerCAM",
            reference="Jiang et al., LayerCAM: Exploring Hierarchical Class Activation Maps for "
            "Localization, IEEE TIP 2021",
            library="pytorch-grad-cam",
            uses_layer=True,
            trains_layer=True,
            signed=False,
            attribute=_layercam,
        ),
    )
}

#: Read-only view of the registered methods, keyed by name.
METHODS: Mapping[str, Method] = MappingProxyType(_REGISTRY)


def get_method(name: str) -> Method:
    """Return the registered method called ``name``.

    Raises:
        ValueError: If no method has that name; the message lists the registered ones.
    """
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}. Expected one of {', '.join(METHODS)}.")
    return METHODS[name]


def validate_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``options`` for method ``name`` and fill in the defaults.

    Args:
        name: A key of :data:`METHODS`.
        options: Keyword options for that method, e.g. ``{"n_steps": 32}`` for ``"ig"``.

    Returns:
        All options of the method, the given ones overriding the defaults.

    Raises:
        ValueError: If the method is unknown, an option is not accepted by it (the message
            lists those it accepts), or an IG option has an invalid value.
    """
    method = get_method(name)
    unknown = sorted(set(options) - set(method.defaults))
    if unknown:
        accepted = ", ".join(method.defaults) or "none"
        raise ValueError(f"Invalid option(s) {', '.join(unknown)} for method '{name}'. Accepted: {accepted}.")
    resolved = {**method.defaults, **options}
    if name == "ig":
        _validate_ig_options(resolved)
    return resolved


def _validate_ig_options(options: Mapping[str, Any]) -> None:
    """Raise ValueError for an invalid IG option, naming it, its value and what is allowed."""
    n_steps = options["n_steps"]
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"Invalid n_steps={n_steps!r} for method 'ig'. Expected an integer >= 1.")
    batch = options["internal_batch_size"]
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(
            f"Invalid internal_batch_size={batch!r} for method 'ig'. Expected None or an integer >= 1."
        )
    if options["rule"] not in IG_RULES:
        raise ValueError(f"Invalid rule={options['rule']!r} for method 'ig'. Expected one of {', '.join(IG_RULES)}.")
    baseline = options["baseline"]
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise ValueError(
            f"Invalid baseline={baseline!r} for method 'ig'. Expected one of {', '.join(BASELINES)}, "
            "a float or a tensor."
        )

