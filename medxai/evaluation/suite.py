"""Registry of the Quantus metrics medxai runs, with their defaults for 28 px and 224 px inputs.

Each entry names a Quantus 0.6.0 metric class, the explanation property it measures and its
score direction (both read from the class attributes ``evaluation_category`` and
``score_direction``), its default parameters as a function of the input geometry, and what
extra data it needs (masks, Focus mosaics). :func:`build_metric` turns an entry and the user's
overrides into a ready Quantus metric.

Defaults that every entry shares:

* ``normalise_func=normalise_by_max_per_sample`` for every metric, used where ``normalise`` is
  on. Quantus 0.6.0's default ``normalise_by_max`` divides by the maximum over the whole
  batch, so a sample's score would depend on which samples share its batch (and so on
  ``batch_size`` and on the DDP shard). Dividing each map by its own maximum removes that
  coupling.
* ``disable_warnings=True`` and ``display_progressbar=False``: medxai logs one line per metric.
* ``return_aggregate=False``: medxai keeps one score per sample and aggregates itself.

Perturbation baselines are given in the model's input space. medxai standardises inputs per
channel with the training split's mean and standard deviation, so Quantus's ``"black"``
baseline (the value 0) replaces a pixel by the training mean, not by black.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import quantus
from quantus.helpers.enums import ScoreDirection

# Parameters passed to a Quantus metric's __call__ rather than its __init__.
CALL_PARAMETERS: tuple[str, ...] = ("softmax",)
# Keys that need data beyond images, labels and explanations.
REQUIRES_MASKS = "masks"
REQUIRES_MOSAICS = "mosaics"


@dataclass(frozen=True)
class InputGeometry:
    """Shape of the inputs the model sees, used to size default parameters.

    Attributes:
        image_size: Height and width in pixels.
        channels: Input channels (1 or 3).
        num_classes: Number of model outputs.
    """

    image_size: int
    channels: int
    num_classes: int

    @property
    def num_features(self) -> int:
        """Number of input values per sample (C * H * W), as Quantus counts features."""
        return self.channels * self.image_size * self.image_size


@dataclass(frozen=True)
class MetricSpec:
    """One Quantus metric as medxai runs it.

    Attributes:
        name: Registry key, the Quantus class name (e.g. ``"FaithfulnessCorrelation"``).
        metric_class: The Quantus metric class.
        reference: The paper the metric follows, as Quantus cites it.
        defaults: Maps the input geometry to the ``__init__`` parameters medxai uses by default.
        requires: Extra data the metric needs: ``"masks"`` (ground-truth masks, ``s_batch``)
            or ``"mosaics"`` (Focus mosaics and their positions).
        call_defaults: Defaults for parameters of the metric's ``__call__`` (e.g. ``softmax``).
        summary: ``"aopc"`` when Quantus returns a perturbation curve per sample that medxai
            reduces to its area over the perturbation curve; None when Quantus returns one
            score per sample.
        note: Where medxai's use departs from the paper or from Quantus's defaults.
    """

    name: str
    metric_class: type
    reference: str
    defaults: Callable[[InputGeometry], dict[str, Any]]
    requires: frozenset[str] = frozenset()
    call_defaults: Mapping[str, Any] = field(default_factory=dict)
    summary: str | None = None
    note: str = ""

    @property
    def property_name(self) -> str:
        """Explanation property, lower case (``"faithfulness"``, ``"robustness"``, ...), from Quantus."""
        return str(self.metric_class.evaluation_category.value).lower()

    @property
    def quantus_direction(self) -> ScoreDirection:
        """Score direction as Quantus declares it on the metric class."""
        return self.metric_class.score_direction

    def direction(self, params: Mapping[str, Any] | None = None) -> ScoreDirection:
        """Return the direction of the score medxai reports for this metric.

        For every metric but one this is :attr:`quantus_direction`. The exception is the AOPC
        of ``RegionPerturbation``. Quantus 0.6.0 declares ``ScoreDirection.LOWER`` for that
        class whatever its ``order``, but its curve stores ``f(x) - f(x_k)``, the drop of the
        target output after removing the ``k`` first regions. Removing the most relevant
        regions first (``order="morf"``) should make that drop large, so a higher AOPC is
        better; this is how Samek et al. (2016), the paper Quantus cites, read the AOPC.
        Removing the least relevant regions first (``order="lerf"``) should keep the drop
        small, so a lower AOPC is better, which matches what Quantus declares.

        Args:
            params: The metric's ``__init__`` parameters (defaults merged with overrides).

        Returns:
            The direction of the reported score.
        """
        if self.summary == "aopc":
            order = str((params or {}).get("order", "morf")).lower()
            return ScoreDirection.HIGHER if order == "morf" else ScoreDirection.LOWER
        return self.quantus_direction


def normalise_by_max_per_sample(a: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Divide each sample's map by its own maximum absolute value.

    Args:
        a: Maps ``(N, ...)``.
        **kwargs: Ignored; Quantus may pass normalisation keywords.

    Returns:
        float ``(N, ...)`` with values in [-1, 1]. A map that is zero everywhere stays zero,
        as Quantus's ``normalise_by_max`` leaves an all-zero batch, instead of becoming NaN.
    """
    array = np.asarray(a)
    peak = np.abs(array).reshape(array.shape[0], -1).max(axis=1) if array.size else np.zeros(0)
    peak = np.where(peak > 0, peak, 1.0).reshape((-1,) + (1,) * (array.ndim - 1))
    return array / peak


def _normalise_per_sample() -> dict[str, Any]:
    """Return the parameters that make Quantus normalise each sample's map by its own maximum."""
    return {"normalise_func": normalise_by_max_per_sample}


def _common() -> dict[str, Any]:
    return {"disable_warnings": True, "display_progressbar": False, "return_aggregate": False}


def _faithfulness_correlation(geometry: InputGeometry) -> dict[str, Any]:
    # 5 % of the input values per run: 39 of 784 at 28 px grayscale, 7526 of 150528 at 224 px RGB.
    subset_size = max(1, round(0.05 * geometry.num_features))
    return {
        **_common(),
        **_normalise_per_sample(),
        "nr_runs": 30,
        "subset_size": subset_size,
        "perturb_baseline": "black",
    }


def _region_perturbation(geometry: InputGeometry) -> dict[str, Any]:
    # A 14 x 14 grid of patches at every size: 2 px patches at 28 px, 16 px at 224 px.
    # 30 regions then remove about 15 % of the image.
    return {
        **_common(),
        **_normalise_per_sample(),
        "patch_size": max(1, geometry.image_size // 14),
        "regions_evaluation": 30,
        "order": "morf",
        "perturb_baseline": "black",
    }


def _sensitivity(geometry: InputGeometry) -> dict[str, Any]:
    # Uniform noise in [-0.2, 0.2] in standardised input units (Quantus's default radius).
    # Quantus compares raw maps here (normalise=False). The per-sample function applies if a user turns it on.
    return {**_common(), **_normalise_per_sample(), "nr_samples": 10, "lower_bound": 0.2}


def _plain(geometry: InputGeometry) -> dict[str, Any]:
    return {**_common(), **_normalise_per_sample()}


def _mprt(geometry: InputGeometry) -> dict[str, Any]:
    return {
        **_common(),
        **_normalise_per_sample(),
        "layer_order": "top_down",
        "skip_layers": True,
        "return_last_correlation": True,
    }


def _random_logit(geometry: InputGeometry) -> dict[str, Any]:
    return {**_common(), **_normalise_per_sample(), "num_classes": geometry.num_classes}


REGISTRY: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            name="FaithfulnessCorrelation",
            metric_class=quantus.FaithfulnessCorrelation,
            reference="Bhatt et al. 2020, Evaluating and aggregating feature-based model explanations, IJCAI",
            defaults=_faithfulness_correlation,
            note=(
                "Pearson correlation per sample between the attribution sum of a random feature subset and "
                "the drop of the target logit when that subset is set to the baseline. "
                "nr_runs=30 as in the original study; subset_size is 5 % of the input values instead of "
                "a fixed 224, so the same share of the image is removed at 28 and 224 px."
            ),
        ),
        MetricSpec(
            name="RegionPerturbation",
            metric_class=quantus.RegionPerturbation,
            reference="Samek et al. 2016, Evaluating the visualization of what a deep neural network has learned, "
            "IEEE TNNLS",
            defaults=_region_perturbation,
            summary="aopc",
            note=(
                "Most relevant patches first (MoRF) on a 14 x 14 grid of non-overlapping patches, 30 regions. "
                "Reported per sample as AOPC = sum_k (f(x) - f(x_k)) / (L + 1) for k = 0..L with L = "
                "regions_evaluation, the k = 0 term being 0, and f the target's softmax probability. The "
                "paper averages the same quantity over the data set."
            ),
        ),
        MetricSpec(
            name="AvgSensitivity",
            metric_class=quantus.AvgSensitivity,
            reference="Yeh et al. 2019, On the (in)fidelity and sensitivity of explanations, NeurIPS",
            defaults=_sensitivity,
            note=(
                "Mean over nr_samples uniform-noise perturbations of ||a(x) - a(x')|| / ||a(x)|| "
                "(Frobenius norms, raw maps). nr_samples=10 instead of the study's 30 to fit the time budget."
            ),
        ),
        MetricSpec(
            name="MaxSensitivity",
            metric_class=quantus.MaxSensitivity,
            reference="Yeh et al. 2019, On the (in)fidelity and sensitivity of explanations, NeurIPS",
            defaults=_sensitivity,
            note="As AvgSensitivity, with the maximum over the perturbations instead of the mean.",
        ),
        MetricSpec(
            name="Complexity",
            metric_class=quantus.Complexity,
            reference="Bhatt et al. 2020, Evaluating and aggregating feature-based model explanations, IJCAI",
            defaults=_plain,
            note="Entropy of the absolute attributions read as a distribution over input values.",
        ),
        MetricSpec(
            name="Sparseness",
            metric_class=quantus.Sparseness,
            reference="Chalasani et al. 2020, Concise explanations of neural networks using adversarial "
            "training, ICML",
            defaults=_plain,
            note="Gini index of the absolute attributions.",
        ),
        MetricSpec(
            name="MPRT",
            metric_class=quantus.MPRT,
            reference="Adebayo et al. 2018, Sanity checks for saliency maps, NeurIPS",
            defaults=_mprt,
            note=(
                "Cascading randomisation from the output layer down (top_down) with skip_layers=True: "
                "only the fully randomised model is compared with the trained one (Spearman rank "
                "correlation of the absolute maps), instead of one score per layer."
            ),
        ),
        MetricSpec(
            name="RandomLogit",
            metric_class=quantus.RandomLogit,
            reference="Sixt et al. 2020, When explanations lie: why many modified BP attributions fail, ICML",
            defaults=_random_logit,
            note="SSIM between the map of the target class and the map of a random other class.",
        ),
        MetricSpec(
            name="Focus",
            metric_class=quantus.Focus,
            reference="Arias-Duart et al. 2022, Focus! Rating XAI methods and finding biases, FUZZ-IEEE",
            defaults=_plain,
            requires=frozenset({REQUIRES_MOSAICS}),
            note=(
                "Share of positive relevance on the two mosaic tiles of the explained class. Each mosaic "
                "is 2 x 2 test images (two of the class, two of other classes), so the model sees twice "
                "the training image size."
            ),
        ),
        MetricSpec(
            name="PointingGame",
            metric_class=quantus.PointingGame,
            reference="Zhang et al. 2018, Top-down neural attention by excitation backprop, IJCV",
            defaults=_plain,
            requires=frozenset({REQUIRES_MASKS}),
            note="Hit when the maximum of the map lies in the mask; no tolerance margin around the mask.",
        ),
        MetricSpec(
            name="RelevanceRankAccuracy",
            metric_class=quantus.RelevanceRankAccuracy,
            reference="Arras et al. 2022, CLEVR-XAI: a benchmark dataset for the ground truth evaluation of "
            "neural network explanations, Information Fusion",
            defaults=_plain,
            requires=frozenset({REQUIRES_MASKS}),
            note="Share of the K highest-relevance pixels inside the mask, K = mask size.",
        ),
        MetricSpec(
            name="AttributionLocalisation",
            metric_class=quantus.AttributionLocalisation,
            reference="Kohlbrenner et al. 2020, Towards best practice in explaining neural network decisions "
            "with LRP, IJCNN",
            defaults=_plain,
            requires=frozenset({REQUIRES_MASKS}),
            # NOTE: Quantus 0.6.0 computes the image size for weighted=True from x_batch[2:] (samples,
            # not pixels), so the weighted variant is not trustworthy; medxai keeps weighted=False.
            note="Share of the absolute relevance inside the mask (unweighted).",
        ),
    )
}

METRIC_NAMES: tuple[str, ...] = tuple(REGISTRY)
MASK_METRICS: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if REQUIRES_MASKS in spec.requires)


def get_spec(name: str) -> MetricSpec:
    """Return the registry entry of ``name``.

    Raises:
        ValueError: If ``name`` is not a registered metric; the message lists the valid names.
    """
    if name not in REGISTRY:
        raise ValueError(f"Unknown metric '{name}'. Valid metrics: {', '.join(METRIC_NAMES)}.")
    return REGISTRY[name]


def validate_metric_names(names: Sequence[str], argument: str = "metrics") -> list[str]:
    """Check metric names and return them without duplicates, in the given order.

    Raises:
        ValueError: If a name is unknown or the list is empty; the message names ``argument``.
    """
    if len(names) == 0:
        raise ValueError(f"Invalid {argument}=[]. Expected at least one of: {', '.join(METRIC_NAMES)}.")
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise ValueError(
            f"Invalid {argument}: unknown metric(s) {', '.join(map(repr, unknown))}. "
            f"Valid metrics: {', '.join(METRIC_NAMES)}."
        )
    return list(dict.fromkeys(names))


def allowed_parameters(spec: MetricSpec) -> list[str]:
    """Return the parameter names a user may override for ``spec`` (its ``__init__`` and call ones)."""
    signature = inspect.signature(spec.metric_class.__init__)
    names = [
        name
        for name, parameter in signature.parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    ]
    return sorted(set(names) | set(CALL_PARAMETERS))


def validate_overrides(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Check per-metric parameter overrides against the Quantus signatures.

    Args:
        overrides: ``{metric name: {parameter: value}}``.

    Returns:
        A plain-dict copy of ``overrides``.

    Raises:
        ValueError: If a metric name or a parameter name is unknown, or a metric's overrides are
            not a mapping; the message lists what is valid.
    """
    checked: dict[str, dict[str, Any]] = {}
    for name, params in (overrides or {}).items():
        if name not in REGISTRY:
            raise ValueError(
                f"Invalid metric_params: unknown metric '{name}'. Valid metrics: {', '.join(METRIC_NAMES)}."
            )
        if not isinstance(params, Mapping):
            raise ValueError(
                f"Invalid metric_params['{name}']={params!r}. Expected a mapping of parameter names to values."
            )
        allowed = allowed_parameters(REGISTRY[name])
        unknown = [key for key in params if key not in allowed]
        if unknown:
            raise ValueError(
                f"Invalid metric_params['{name}']: unknown parameter(s) {', '.join(map(repr, unknown))}. "
                f"Valid parameters: {', '.join(allowed)}."
            )
        checked[name] = dict(params)
    return checked


def resolve_parameters(
    spec: MetricSpec, geometry: InputGeometry, overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge a metric's defaults with overrides and split them into ``__init__`` and call parameters.

    Returns:
        ``(init_params, call_params)``.
    """
    merged = {**spec.defaults(geometry), **spec.call_defaults, **(overrides or {})}
    call_params = {key: merged.pop(key) for key in CALL_PARAMETERS if key in merged}
    return merged, call_params


def build_metric(spec: MetricSpec, init_params: Mapping[str, Any]) -> Any:
    """Instantiate the Quantus metric of ``spec`` with ``init_params``.

    A new instance is built for every method because Quantus metrics keep the scores of their
    last call as state.
    """
    return spec.metric_class(**init_params)
