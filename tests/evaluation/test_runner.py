from __future__ import annotations

import random

import numpy as np
import pytest
import quantus
import torch

from medxai.evaluation import QuantusExplainFunc, build_focus_mosaics, run_suite
from medxai.evaluation.runner import EXPLANATION, Failure, SuiteResult, merge_results, per_sample_scores
from medxai.evaluation.suite import MASK_METRICS, METRIC_NAMES, get_spec
from tests.evaluation.helpers import TinyNet, synthetic_test_batch

# Small parameters keep a full suite on 6 samples at a few seconds.
FAST = {
    "FaithfulnessCorrelation": {"nr_runs": 4},
    "RegionPerturbation": {"regions_evaluation": 4},
    "AvgSensitivity": {"nr_samples": 3},
    "MaxSensitivity": {"nr_samples": 3},
}


@pytest.fixture(scope="module")
def batch():
    x, y, masks = synthetic_test_batch(6)
    return x, y, masks


@pytest.fixture(scope="module")
def funcs():
    return {"gradcam": QuantusExplainFunc("gradcam"), "saliency": QuantusExplainFunc("saliency")}


def _run(batch, funcs, seed=0, metrics=None, params=FAST, model=None):
    x, y, masks = batch
    mosaics = build_focus_mosaics(x, y, np.arange(len(x)), seed=seed)
    return run_suite(
        model or TinyNet().eval(),
        x,
        y,
        funcs,
        metrics,
        num_classes=2,
        masks=masks,
        mosaics=mosaics,
        metric_params=params,
        seed=seed,
        batch_size=4,
    )


def test_full_suite_scores_every_cell(batch, funcs):
    result = _run(batch, funcs)
    assert result.failures == []
    assert result.skipped == {}
    for method in funcs:
        assert set(result.scores[method]) == set(METRIC_NAMES)
        for scores in result.scores[method].values():
            assert scores.shape == (6,)
            assert np.isfinite(scores).all()


def test_same_seed_identical_scores(batch, funcs):
    first = _run(batch, funcs, seed=3)
    second = _run(batch, funcs, seed=3)
    for method in funcs:
        for metric in METRIC_NAMES:
            np.testing.assert_array_equal(first.scores[method][metric], second.scores[method][metric])


def test_other_seed_changes_random_metrics(batch, funcs):
    first = _run(batch, funcs, seed=3, metrics=["FaithfulnessCorrelation", "Complexity"])
    second = _run(batch, funcs, seed=4, metrics=["FaithfulnessCorrelation", "Complexity"])
    faithfulness = [first.scores["gradcam"]["FaithfulnessCorrelation"], second.scores["gradcam"]["FaithfulnessCorrelation"]]
    assert not np.array_equal(*faithfulness)
    np.testing.assert_array_equal(first.scores["gradcam"]["Complexity"], second.scores["gradcam"]["Complexity"])


def test_raising_metric_recorded_others_complete(batch, funcs):
    params = {**FAST, "FaithfulnessCorrelation": {"nr_runs": 2, "subset_size": 10_000}}
    result = _run(batch, funcs, metrics=["FaithfulnessCorrelation", "Sparseness"], params=params)
    failed = {(failure.method, failure.metric) for failure in result.failures}
    assert failed == {("gradcam", "FaithfulnessCorrelation"), ("saliency", "FaithfulnessCorrelation")}
    reason = result.failures[0].reason
    assert reason.startswith("ValueError")
    assert "must be smaller than input size" in reason
    assert result.failures[0].n_failed == 6
    assert "FaithfulnessCorrelation" not in result.scores["gradcam"]
    assert np.isfinite(result.scores["gradcam"]["Sparseness"]).all()


def test_nan_scores_recorded_not_replaced(batch, funcs):
    x, y, masks = batch
    empty_first = masks.copy()
    empty_first[0] = False
    result = run_suite(TinyNet().eval(), x, y, funcs, ["AttributionLocalisation"], num_classes=2, masks=empty_first)
    scores = result.scores["gradcam"]["AttributionLocalisation"]
    assert np.isnan(scores[0])
    assert np.isfinite(scores[1:]).all()
    failure = next(f for f in result.failures if f.method == "gradcam")
    assert failure.metric == "AttributionLocalisation"
    assert failure.n_failed == 1
    assert "NaN" in failure.reason


def test_raising_method_recorded(batch, funcs):
    def broken(model, inputs, targets, **kwargs):
        raise RuntimeError("attribution exploded")

    result = _run(batch, {**funcs, "broken": broken}, metrics=["Complexity"])
    failure = next(f for f in result.failures if f.method == "broken")
    assert failure.metric == EXPLANATION
    assert "RuntimeError: attribution exploded" in failure.reason
    assert result.scores["broken"] == {}
    assert np.isfinite(result.scores["gradcam"]["Complexity"]).all()


def test_max_sensitivity_matches_direct_quantus_call(batch, funcs):
    x, y, _ = batch
    model = TinyNet().eval()
    result = _run(batch, funcs, metrics=["AvgSensitivity", "MaxSensitivity"], model=model)
    assert result.metrics["MaxSensitivity"]["computed_with"] == "AvgSensitivity"

    params = {"nr_samples": 3, "lower_bound": 0.2, "disable_warnings": True, "return_aggregate": False}
    np.random.seed(0)
    torch.manual_seed(0)
    direct = quantus.MaxSensitivity(**params)(
        model=model,
        x_batch=x,
        y_batch=y,
        a_batch=funcs["gradcam"](model, x, y),
        explain_func=funcs["gradcam"],
        batch_size=4,
        device="cpu",
    )
    np.testing.assert_allclose(result.scores["gradcam"]["MaxSensitivity"], direct, rtol=1e-6)


def test_mask_metrics_skipped_without_masks(batch, funcs):
    x, y, _ = batch
    result = run_suite(TinyNet().eval(), x, y, funcs, ["Sparseness", *MASK_METRICS], num_classes=2)
    assert set(result.skipped) == set(MASK_METRICS)
    assert "masks" in result.skipped["PointingGame"]
    assert set(result.metric_info()) == {"Sparseness"}
    assert result.failures == []


def test_metric_record_has_metadata(batch, funcs):
    result = _run(batch, funcs, metrics=["RegionPerturbation", "MPRT"])
    record = result.metrics["RegionPerturbation"]
    assert record["property"] == "faithfulness"
    assert record["direction"] == "higher"
    assert record["quantus_direction"] == quantus.RegionPerturbation.score_direction.value
    assert result.metrics["MPRT"]["direction"] == quantus.MPRT.score_direction.value
    assert result.metrics["MPRT"]["params"]["seed"] == 0


def test_model_mode_and_rng_restored(batch, funcs):
    model = TinyNet().train()
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    _run(batch, funcs, metrics=["Complexity", "RandomLogit"], model=model)
    assert model.training
    assert model.layer1[1].training
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_runs_under_inference_mode(batch, funcs):
    # Lightning builds the model outside inference mode and tests inside it.
    model = TinyNet().eval()
    with torch.inference_mode():
        result = _run(batch, funcs, metrics=["MPRT", "AvgSensitivity"], model=model)
    assert result.failures == []


def test_aopc_of_curve():
    spec = get_spec("RegionPerturbation")
    np.testing.assert_allclose(per_sample_scores(spec, [[0.2, 0.4, 0.6], [0.0, 0.0, 0.0]], 2), [0.3, 0.0])
    with pytest.raises(ValueError, match="expected \\(3, L\\)"):
        per_sample_scores(spec, [[0.2, 0.4]], 3)


def test_wrong_score_count_rejected():
    with pytest.raises(ValueError, match="returned 2 scores for 3 samples"):
        per_sample_scores(get_spec("Complexity"), [0.1, 0.2], 3)


def test_invalid_arguments(batch, funcs):
    x, y, masks = batch
    model = TinyNet().eval()
    with pytest.raises(ValueError, match="Valid metrics"):
        run_suite(model, x, y, funcs, ["Nope"], num_classes=2)
    with pytest.raises(ValueError, match="Invalid explain_funcs"):
        run_suite(model, x, y, {}, num_classes=2)
    with pytest.raises(ValueError, match="Invalid batch_size=0"):
        run_suite(model, x, y, funcs, num_classes=2, batch_size=0)
    with pytest.raises(ValueError, match=r"Invalid masks with shape \(6, 1, 14, 14\)"):
        run_suite(model, x, y, funcs, num_classes=2, masks=masks[:, :, :14, :14])
    with pytest.raises(ValueError, match="Invalid inputs/targets"):
        run_suite(model, x, y[:3], funcs, num_classes=2)


def test_merge_results_in_subset_order():
    first = SuiteResult(scores={"m": {"A": np.array([1.0, 3.0]), "B": np.array([5.0, 6.0])}})
    second = SuiteResult(
        scores={"m": {"A": np.array([2.0])}},
        failures=[Failure("m", "B", "ValueError: boom", 1, 1)],
        skipped={"PointingGame": "no masks"},
        seconds={"A": {"m": 4.0}},
    )
    first.seconds = {"A": {"m": 2.0}}
    merged = merge_results([(np.array([0, 2]), first), (np.array([1]), second), (np.array([], dtype=int), None)], 3)

    np.testing.assert_array_equal(merged.scores["m"]["A"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(merged.scores["m"]["B"], [5.0, np.nan, 6.0])
    assert merged.failures == [Failure("m", "B", "ValueError: boom", 1, 3)]
    assert merged.skipped == {"PointingGame": "no masks"}
    assert merged.seconds == {"A": {"m": 4.0}}


def test_nan_reason_counts_all_zero_maps(batch):
    x, y, _ = batch

    def zero_first(model, inputs, targets, **kwargs):
        maps = np.random.default_rng(0).random((len(inputs), 1, 28, 28)).astype(np.float32)
        maps[0] = 0.0
        return maps

    result = run_suite(TinyNet().eval(), x, y, {"half": zero_first}, ["Complexity"], num_classes=2)
    assert np.isnan(result.scores["half"]["Complexity"][0])
    failure = result.failures[0]
    assert failure.n_failed == 1
    assert failure.reason.endswith("(1 of them have an all-zero half map)")
