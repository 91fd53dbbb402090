"""Attribution maps for image classifiers: one batched interface over Captum and pytorch-grad-cam.

Example:
    >>> from medxai.explain import explain, METHODS
    >>> maps = explain(model, x, target, method="gradcam", layer="layer4")  # doctest: +SKIP
"""

from medxai.explain.api import Explanation, explain, explain_batched
from medxai.explain.baselines import BASELINES, make_baseline
from medxai.explain.grads import attribution_mode, module_hook_count
from medxai.explain.layers import conv_layer_names, resolve_layer
from medxai.explain.methods import METHODS, Method, get_method, validate_options

__all__ = [
    "BASELINES",
    "METHODS",
    "Explanation",
    "Method",
    "attribution_mode",
    "conv_layer_names",
    "explain",
    "explain_batched",
    "get_method",
    "make_baseline",
    "module_hook_count",
    "resolve_layer",
    "validate_options",
]
