from __future__ import annotations

import numpy as np
import pytest
import quantus
from quantus.helpers.enums import EvaluationCategory, ScoreDirection

from medxai.evaluation.suite import (
    MASK_METRICS,
    METRIC_NAMES,
    REGISTRY,
    InputGeometry,
    MetricSpec,
    allowed_parameters,
    build_metric,
    get_spec,
    normalise_by_max_per_sample,
    resolve_parameters,
    validate_metric_names,
    validate_overrides,
)

GRAY_28 = InputGeometry(image_size=28, channels=1, num_classes=2)
RGB_224 = InputGeometry(image_size=224, channels=3, num_classes=8)


class _FakeMetric:
    """Stands in for a Quantus class: only the metadata attributes matter here."""

    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.ROBUSTNESS


def test_direction_read_from_class_metadata():
    spec = MetricSpec(name="Fake", metric_class=_FakeMetric, reference="", defaults=lambda geometry: {})
    assert spec.direction() is ScoreDirection.HIGHER
    assert spec.property_name == "robustness"

    _FakeMetric.score_direction = ScoreDirection.LOWER
    try:
        assert spec.direction() is ScoreDirection.LOWER
    finally:
        _FakeMetric.score_direction = ScoreDirection.HIGHER


@pytest.mark.parametrize("name", [name for name in METRIC_NAMES if REGISTRY[name].summary is None])
def test_registry_direction_is_quantus_direction(name):
    spec = REGISTRY[name]
    assert spec.direction() is spec.metric_class.score_direction
    assert spec.property_name == spec.metric_class.evaluation_category.value.lower()


def test_region_perturbation_aopc_direction_follows_order():
    spec = get_spec("RegionPerturbation")
    assert spec.quantus_direction is quantus.RegionPerturbation.score_direction
    assert spec.direction({"order": "morf"}) is ScoreDirection.HIGHER
    assert spec.direction({"order": "lerf"}) is ScoreDirection.LOWER


def test_properties_cover_five_categories():
    properties = {spec.property_name for spec in REGISTRY.values()}
    assert properties == {"faithfulness", "robustness", "complexity", "randomisation", "localisation"}


def test_faithfulness_never_reported_as_localisation():
    assert get_spec("FaithfulnessCorrelation").property_name == "faithfulness"
    assert get_spec("RegionPerturbation").property_name == "faithfulness"
    assert set(MASK_METRICS) == {"PointingGame", "RelevanceRankAccuracy", "AttributionLocalisation"}
    assert all(REGISTRY[name].property_name == "localisation" for name in (*MASK_METRICS, "Focus"))


def test_defaults_scale_with_image_size():
    small, _ = resolve_parameters(get_spec("FaithfulnessCorrelation"), GRAY_28)
    large, _ = resolve_parameters(get_spec("FaithfulnessCorrelation"), RGB_224)
    assert small["subset_size"] == 39
    assert large["subset_size"] == 7526
    assert small["return_aggregate"] is False

    small, _ = resolve_parameters(get_spec("RegionPerturbation"), GRAY_28)
    large, _ = resolve_parameters(get_spec("RegionPerturbation"), RGB_224)
    assert (small["patch_size"], large["patch_size"]) == (2, 16)
    assert small["regions_evaluation"] <= (28 // 2) ** 2


def test_random_logit_takes_num_classes():
    params, _ = resolve_parameters(get_spec("RandomLogit"), RGB_224)
    assert params["num_classes"] == 8


def test_overrides_win_and_call_params_split():
    init_params, call_params = resolve_parameters(
        get_spec("FaithfulnessCorrelation"), GRAY_28, {"nr_runs": 5, "softmax": True}
    )
    assert init_params["nr_runs"] == 5
    assert call_params == {"softmax": True}
    assert "softmax" not in init_params


@pytest.mark.parametrize("geometry", [GRAY_28, RGB_224], ids=["28px", "224px"])
@pytest.mark.parametrize("name", METRIC_NAMES)
def test_every_metric_builds_with_defaults(name, geometry):
    spec = get_spec(name)
    init_params, _ = resolve_parameters(spec, geometry)
    metric = build_metric(spec, init_params)
    assert isinstance(metric, spec.metric_class)


def test_unknown_metric_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown metric 'Nope'. Valid metrics: FaithfulnessCorrelation"):
        get_spec("Nope")
    with pytest.raises(ValueError, match=r"Invalid metrics: unknown metric\(s\) 'Nope'.*Valid metrics"):
        validate_metric_names(["Complexity", "Nope"])


def test_empty_metric_list_rejected():
    with pytest.raises(ValueError, match=r"Invalid metrics=\[\]"):
        validate_metric_names([])


def test_duplicate_metric_names_removed():
    assert validate_metric_names(["Complexity", "Sparseness", "Complexity"]) == ["Complexity", "Sparseness"]


def test_override_validation():
    assert validate_overrides({"MPRT": {"layer_order": "independent"}}) == {"MPRT": {"layer_order": "independent"}}
    with pytest.raises(ValueError, match="unknown metric 'Nope'"):
        validate_overrides({"Nope": {}})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'nr_run'.*Valid parameters: .*nr_runs"):
        validate_overrides({"FaithfulnessCorrelation": {"nr_run": 3}})
    with pytest.raises(ValueError, match=r"Invalid metric_params\['Complexity'\]=3"):
        validate_overrides({"Complexity": 3})


def test_allowed_parameters_include_softmax():
    assert "softmax" in allowed_parameters(get_spec("Complexity"))
    assert "nr_samples" in allowed_parameters(get_spec("AvgSensitivity"))


def test_per_sample_normalisation():
    maps = np.array([[[1.0, -4.0]], [[0.0, 0.0]], [[0.5, 0.25]]])
    normalised = normalise_by_max_per_sample(maps)
    np.testing.assert_allclose(normalised, [[[0.25, -1.0]], [[0.0, 0.0]], [[1.0, 0.5]]])


def test_normalisation_independent_of_batch():
    maps = np.random.default_rng(0).random((4, 1, 28, 28)) * np.array([1.0, 10.0, 100.0, 1000.0])[:, None, None, None]
    for name in METRIC_NAMES:
        init_params, _ = resolve_parameters(get_spec(name), GRAY_28)
        normalise = build_metric(get_spec(name), init_params).normalise_func
        np.testing.assert_allclose(normalise(maps)[:1], normalise(maps[:1]), err_msg=name)
    # Quantus's own default couples samples, which is what the registry avoids.
    assert not np.allclose(quantus.normalise_func.normalise_by_max(maps)[:1], quantus.normalise_func.normalise_by_max(maps[:1]))
