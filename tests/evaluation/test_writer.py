from __future__ import annotations

import csv
import json
import math

import numpy as np

from medxai.evaluation.runner import Failure, SuiteResult
from medxai.evaluation.writer import library_versions, write_evaluation


def _result() -> SuiteResult:
    rng = np.random.default_rng(0)
    base = rng.normal(size=12)
    result = SuiteResult(
        scores={
            "good": {"Sparseness": base + 2.0, "Complexity": np.abs(base)},
            "bad": {"Sparseness": base, "Complexity": np.abs(base) + 1.0},
        },
        failures=[Failure("bad", "MPRT", "AssertionError: all zero", 12, 12)],
        skipped={"PointingGame": "needs ground-truth masks"},
    )
    result.scores["bad"]["Complexity"][0] = np.nan
    result.metrics = {
        "Sparseness": {"property": "complexity", "direction": "higher"},
        "Complexity": {"property": "complexity", "direction": "lower"},
        "PointingGame": {"property": "localisation", "direction": "higher"},
    }
    return result


def test_writes_all_files(tmp_path):
    report = write_evaluation(tmp_path, _result(), {"index": list(range(12))}, {"seed": 3}, n_resamples=100)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "normalized.csv", "radar.png", "scores.json", "stats.csv", "summary.csv",
    ]
    assert set(report.paths) == {"scores", "summary", "normalized", "stats", "radar"}


def test_scores_json_keeps_nan_and_failures(tmp_path):
    write_evaluation(tmp_path, _result(), {"index": list(range(12))}, {"seed": 3}, n_resamples=100)
    document = json.loads((tmp_path / "scores.json").read_text())
    assert document["config"] == {"seed": 3}
    assert document["scores"]["bad"]["Complexity"][0] is None
    assert document["failures"][0]["reason"] == "AssertionError: all zero"
    assert document["skipped"] == {"PointingGame": "needs ground-truth masks"}
    assert document["samples"]["index"] == list(range(12))


def test_summary_counts_missing_and_ranks(tmp_path):
    write_evaluation(tmp_path, _result(), {"index": list(range(12))}, {}, n_resamples=100)
    with (tmp_path / "summary.csv").open(newline="") as handle:
        rows = {(row["method"], row["metric"]): row for row in csv.DictReader(handle)}
    assert rows[("bad", "Complexity")]["n"] == "11"
    assert rows[("bad", "Complexity")]["n_missing"] == "1"
    assert rows[("good", "Complexity")]["rank"] == "1"
    assert rows[("good", "Sparseness")]["rank"] == "1"
    assert ("good", "PointingGame") not in rows


def test_normalized_csv_best_is_one(tmp_path):
    write_evaluation(tmp_path, _result(), {"index": list(range(12))}, {}, n_resamples=100)
    with (tmp_path / "normalized.csv").open(newline="") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert rows["good"]["Sparseness"] == "1"
    assert rows["bad"]["Sparseness"] == "0"
    assert rows["good"]["Complexity"] == "1"
    assert "PointingGame" not in rows["good"]


def test_stats_csv_has_holm_column(tmp_path):
    write_evaluation(tmp_path, _result(), {"index": list(range(12))}, {}, n_resamples=100)
    with (tmp_path / "stats.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    sparseness = next(row for row in rows if row["metric"] == "Sparseness")
    assert sparseness["better"] == "good"
    assert float(sparseness["p_holm"]) <= 1.0
    assert not math.isnan(float(sparseness["p_value"]))


def test_library_versions_include_quantus():
    versions = library_versions()
    assert versions["quantus"] == "0.6.0"
    assert versions["python"]
