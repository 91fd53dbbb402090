from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from quantus.helpers.enums import ScoreDirection

from medxai.evaluation.stats import (
    bootstrap_ci,
    describe,
    direction_name,
    holm_adjust,
    normalise_means,
    normalised_table,
    pairwise_tests,
    radar_figure,
    rank_methods,
    summarise,
    wilcoxon_paired,
)


def test_holm_hand_checked_example():
    # Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06.
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_order():
    np.testing.assert_allclose(holm_adjust([0.6, 0.7]), [1.0, 1.0])
    np.testing.assert_allclose(holm_adjust([0.5, 0.01]), [0.5, 0.02])


def test_holm_nan_left_out_of_family():
    adjusted = holm_adjust([0.02, np.nan, 0.5])
    assert adjusted[0] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.5)


def test_holm_empty_and_all_nan():
    assert holm_adjust([]).size == 0
    assert np.isnan(holm_adjust([np.nan, np.nan])).all()


def test_wilcoxon_exact_small_sample():
    # Five positive differences: W- = 0, exact two-sided p = 2 / 2**5.
    result = wilcoxon_paired([2, 3, 4, 5, 6], [1, 1, 1, 1, 1])
    assert result["p_value"] == pytest.approx(0.0625)
    assert result["statistic"] == 0.0
    assert result["n_pairs"] == 5


def test_wilcoxon_identical_scores():
    result = wilcoxon_paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert result["p_value"] == 1.0
    assert "zero" in result["note"]


def test_wilcoxon_drops_nan_pairs():
    result = wilcoxon_paired([2, 3, np.nan, 5, 6, 7], [1, 1, 1, np.nan, 1, 1])
    assert result["n_pairs"] == 4


def test_wilcoxon_too_few_differences():
    result = wilcoxon_paired([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert math.isnan(result["p_value"])


def test_wilcoxon_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        wilcoxon_paired([1.0, 2.0], [1.0])


def test_normalise_higher_is_better():
    normalised = normalise_means({"a": 1.0, "b": 3.0, "c": 2.0}, "higher")
    assert normalised == {"a": 0.0, "b": 1.0, "c": 0.5}


def test_normalise_lower_is_better_flips():
    normalised = normalise_means({"a": 1.0, "b": 3.0, "c": 2.0}, ScoreDirection.LOWER)
    assert normalised == {"a": 1.0, "b": 0.0, "c": 0.5}


def test_normalise_ties_and_nan():
    normalised = normalise_means({"a": 2.0, "b": 2.0, "c": math.nan}, "lower")
    assert normalised["a"] == 1.0
    assert normalised["b"] == 1.0
    assert math.isnan(normalised["c"])


def test_rank_by_direction():
    means = {"a": 1.0, "b": 3.0, "c": 2.0}
    assert rank_methods(means, "higher") == {"a": 3.0, "b": 1.0, "c": 2.0}
    assert rank_methods(means, "lower") == {"a": 1.0, "b": 3.0, "c": 2.0}


def test_rank_ties_share_average():
    ranks = rank_methods({"a": 1.0, "b": 1.0, "c": 0.0, "d": math.nan}, "higher")
    assert ranks["a"] == 1.5
    assert ranks["b"] == 1.5
    assert ranks["c"] == 3.0
    assert math.isnan(ranks["d"])


def test_bootstrap_constant_values():
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)


def test_bootstrap_seeded_and_covers_mean():
    values = np.random.default_rng(3).normal(2.0, 1.0, size=200)
    first = bootstrap_ci(values, seed=7)
    second = bootstrap_ci(values, seed=7)
    assert first == second
    assert first[0] < values.mean() < first[1]
    assert first[1] - first[0] < 0.5


def test_bootstrap_needs_two_values():
    assert all(math.isnan(bound) for bound in bootstrap_ci([1.0, np.nan]))


def test_bootstrap_invalid_arguments():
    with pytest.raises(ValueError, match="confidence=1.5"):
        bootstrap_ci([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples=0"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)


def test_describe_ignores_nan():
    described = describe([1.0, 2.0, 3.0, np.nan])
    assert described["mean"] == 2.0
    assert described["std"] == pytest.approx(1.0)
    assert described["n"] == 3
    assert described["n_missing"] == 1


def test_direction_name_from_quantus_and_strings():
    assert direction_name(ScoreDirection.HIGHER) == "higher"
    assert direction_name("LOWER") == "lower"
    with pytest.raises(ValueError, match="Invalid direction 'sideways'"):
        direction_name("sideways")


def _scores() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    base = rng.normal(size=30)
    scores = {
        "good": {"M": base + 1.0, "C": np.abs(base)},
        "mid": {"M": base + 0.5 + rng.normal(scale=0.1, size=30), "C": np.abs(base) + 1.0},
        "bad": {"M": base, "C": np.abs(base) + 2.0},
    }
    info = {"M": {"property": "faithfulness", "direction": "higher"}, "C": {"property": "complexity", "direction": "lower"}}
    return scores, info


def test_summarise_rows_and_ranks():
    scores, info = _scores()
    rows = summarise(scores, info, n_resamples=200)
    by_key = {(row["method"], row["metric"]): row for row in rows}
    assert len(rows) == 6
    assert by_key[("good", "M")]["rank"] == 1.0
    assert by_key[("bad", "M")]["rank"] == 3.0
    assert by_key[("good", "C")]["rank"] == 1.0
    assert by_key[("good", "C")]["direction"] == "lower"
    assert by_key[("mid", "M")]["ci_low"] < by_key[("mid", "M")]["mean"] < by_key[("mid", "M")]["ci_high"]


def test_pairwise_tests_apply_holm_per_metric():
    scores, info = _scores()
    rows = pairwise_tests(scores, info)
    assert len(rows) == 6
    for metric in ("M", "C"):
        metric_rows = [row for row in rows if row["metric"] == metric]
        expected = holm_adjust([row["p_value"] for row in metric_rows])
        np.testing.assert_allclose([row["p_holm"] for row in metric_rows], expected)
    good_bad = next(row for row in rows if row["metric"] == "C" and {row["method_a"], row["method_b"]} == {"good", "bad"})
    assert good_bad["better"] == "good"
    assert good_bad["p_holm"] < 0.001
    assert good_bad["significant"] is True


def test_pairwise_tests_mark_noise_not_significant():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(2, 30))
    scores = {"a": {"M": noise[0]}, "b": {"M": noise[1]}}
    (row,) = pairwise_tests(scores, {"M": {"property": "p", "direction": "higher"}})
    assert row["p_holm"] > 0.05
    assert row["significant"] is False
    assert row["better"] in ("a", "b")  # The better mean is still named.


def test_normalised_table_best_is_one():
    scores, info = _scores()
    table = normalised_table(summarise(scores, info, n_resamples=50))
    assert table["good"]["M"] == 1.0
    assert table["bad"]["M"] == 0.0
    assert table["good"]["C"] == 1.0
    assert table["bad"]["C"] == 0.0


def test_radar_figure_marks_missing_scores():
    figure = radar_figure({"a": {"M": 1.0, "C": 0.0, "D": 0.5}, "b": {"M": 0.0, "C": math.nan, "D": 1.0}})
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    assert len(axes.get_lines()) == 2
    labels = [label.get_text() for label in axes.get_xticklabels()]
    assert any("n/a: b" in label for label in labels)
