"""Readers of the run files: tolerant to key spellings and layouts the callbacks may write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medxai.report import quantus_record
from medxai.report.explanation_record import read_explanations
from medxai.report.sections.curves import group_curves, read_scalars
from tests.report.report_fixtures import write_events, write_png


def write_record(run_dir: Path, record: object) -> None:
    path = run_dir / "explanations" / "explanations.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_explanations_list_layout(tmp_path: Path) -> None:
    write_record(
        tmp_path,
        [
            {
                "idx": 5,
                "label": 1,
                "prediction": 0,
                "prob": 0.6,
                "explanations": [
                    {"method": "ig", "status": "error", "message": "boom"},
                    {"name": "saliency", "status": "success", "png": "saliency/5.png"},
                ],
            }
        ],
    )
    write_png(tmp_path / "explanations" / "saliency" / "5.png", seed=0)

    record = read_explanations(tmp_path)

    assert record.methods == ["ig", "saliency"]
    sample = record.samples[0]
    assert (sample.index, sample.true_label, sample.predicted_label) == (5, 1, 0)
    assert sample.probability == pytest.approx(0.6)
    assert sample.correct is False
    assert sample.results["saliency"].ok
    assert sample.results["saliency"].images == [tmp_path / "explanations" / "saliency" / "5.png"]
    assert list(record.failures()) == [("ig", 5, "error", "boom")]


def test_explanations_bare_string_path(tmp_path: Path) -> None:
    write_record(tmp_path, {"samples": [{"index": 1, "methods": {"gradcam": "gradcam/1.png"}}]})
    write_png(tmp_path / "explanations" / "gradcam" / "1.png", seed=0)

    result = read_explanations(tmp_path).samples[0].results["gradcam"]

    assert result.ok
    assert result.status == "ok"
    assert len(result.images) == 1


def test_explanations_methods_on_sample(tmp_path: Path) -> None:
    write_record(
        tmp_path,
        {
            "methods": ["gradcam", "saliency"],
            "items": [{"index": 2, "gradcam": {"status": "ok", "overlay": "missing.png"}, "saliency": {}}],
        },
    )

    record = read_explanations(tmp_path)

    results = record.samples[0].results
    assert results["gradcam"].ok
    assert results["gradcam"].images == []
    assert results["gradcam"].missing_images == ["missing.png"]
    assert results["saliency"].ok
    assert record.samples[0].correct is None


def test_explanations_bool_status(tmp_path: Path) -> None:
    result = {"status": False, "error": "NaN map"}
    write_record(tmp_path, {"samples": [{"index": 0, "methods": {"ig": result}}]})

    assert list(read_explanations(tmp_path).failures()) == [("ig", 0, "failed", "NaN map")]


def test_explanations_reason_without_status(tmp_path: Path) -> None:
    write_record(tmp_path, {"samples": [{"index": 0, "methods": {"ig": {"reason": "out of memory"}}}]})

    assert list(read_explanations(tmp_path).failures()) == [("ig", 0, "failed", "out of memory")]


def test_explanations_correct_flag_wins(tmp_path: Path) -> None:
    sample = {"index": 0, "true_label": 1, "predicted_label": 1, "correct": False}
    write_record(tmp_path, {"samples": [sample]})

    assert read_explanations(tmp_path).samples[0].correct is False


def test_explanations_without_samples_rejected(tmp_path: Path) -> None:
    write_record(tmp_path, {"settings": {}, "count": 0})

    expected = r"no list of samples under any of .*its keys are \['count', 'settings'\]"
    with pytest.raises(ValueError, match=expected):
        read_explanations(tmp_path)


def test_explanations_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_explanations(tmp_path)


def test_quantus_failure_list_kept() -> None:
    entry = {"method": "ig", "metric": "MPRT", "reason": "boom", "n_failed": 2, "n_total": 4}

    assert quantus_record.failures({"failures": [entry]}) == [entry]


def test_quantus_failure_mapping_flattened() -> None:
    rows = quantus_record.failures({"failures": {"ig": {"MPRT": "boom", "Sparseness": "NaN scores"}}})

    assert rows == [
        {"where": "ig / MPRT", "reason": "boom"},
        {"where": "ig / Sparseness", "reason": "NaN scores"},
    ]


def test_quantus_failures_found_in_scores() -> None:
    scores = {
        "config": {"reason": "not a failure"},
        "scores": {
            "ig": {"MPRT": {"status": "failed", "reason": "layer not found"}, "Sparseness": [0.1, 0.2]}
        },
    }

    rows = quantus_record.failures(scores)

    assert rows == [{"where": "scores / ig / MPRT", "status": "failed", "reason": "layer not found"}]


def test_quantus_failed_status_without_reason() -> None:
    rows = quantus_record.failures({"scores": {"ig": {"MPRT": {"status": "error"}}}})

    assert rows[0]["reason"] == "status error, no reason recorded"


def test_quantus_no_failures() -> None:
    assert quantus_record.failures({"failures": [], "scores": {"ig": {"MPRT": [0.5]}}}) == []


def test_quantus_versions_and_skipped() -> None:
    scores = {"library_versions": {"quantus": "0.6.0"}, "skipped": {"PointingGame": "no masks"}}

    assert quantus_record.versions(scores) == {"quantus": "0.6.0"}
    assert quantus_record.skipped(scores) == {"PointingGame": "no masks"}


def test_csv_read_generically(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    path.write_text('metric,"odd, column",p\nMPRT,"a, b",0.01\n\n')

    table = quantus_record.read_csv(path)

    assert table.header == ["metric", "odd, column", "p"]
    assert table.rows == [["MPRT", "a, b", "0.01"]]


def test_empty_csv_rejected(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    path.write_text("\n")

    with pytest.raises(ValueError, match="summary.csv is empty"):
        quantus_record.read_csv(path)


def test_scalars_read_and_grouped(tmp_path: Path) -> None:
    write_events(tmp_path)

    curves = read_scalars(tmp_path)
    groups = group_curves(curves)

    assert curves["val/auc"][0] == [9, 19, 29]
    assert curves["val/auc"][1] == pytest.approx([0.7, 0.78, 0.86])
    assert sorted(groups["Loss"]) == ["train/loss_epoch", "train/loss_step", "val/loss"]
    assert sorted(groups["AUC and accuracy"]) == ["train/acc", "val/acc", "val/auc"]
    assert sorted(groups["Other scalars"]) == ["lr-AdamW"]
    grouped_tags = {tag for group in groups.values() for tag in group}
    assert "epoch" not in grouped_tags
    assert "test/acc" not in grouped_tags
    assert not any(tag.startswith("quantus/") for tag in grouped_tags)
