"""build_report on fixture run directories: content, escaping, embedding and missing files."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from medxai.report import RunDirectoryError, build_report, builder, render_report
from medxai.report.html import Section
from tests.report.report_fixtures import (
    ALL_PARTS,
    CLASS_NAMES,
    IG_FAILURE,
    METRIC_REFERENCE,
    QUANTUS_FAILURE,
    REFERENCE,
    SKIPPED_REASON,
    write_png,
)

SECTION_IDS = [
    "dataset",
    "environment",
    "curves",
    "test-metrics",
    "explanations",
    "quantus",
    "failures",
    "config",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PageParser(HTMLParser):
    """Collect section ids, image sources, links and scripts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.image_sources: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self._current: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self._current = attributes["id"]
            self._text = []
        elif tag == "img":
            self.image_sources.append(attributes["src"] or "")
        elif tag in ("a", "link"):
            self.links.append(attributes.get("href") or "")
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self._current is not None:
            self.sections[self._current] = "".join(self._text)
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)


def parse(html_text: str) -> PageParser:
    parser = PageParser()
    parser.feed(html_text)
    parser.close()
    return parser


def test_full_report_sections_and_images(full_run_dir: Path) -> None:
    path = build_report(full_run_dir)

    assert path == full_run_dir.resolve() / "report.html"
    page = parse(path.read_text())
    assert list(page.sections) == SECTION_IDS
    # Loss, AUC/accuracy, other scalars, confusion matrix, summary, grid, 11 cells, radar.
    assert len(page.image_sources) == 18
    for source in page.image_sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert page.scripts == 0
    assert all(link.startswith(("#", "data:")) for link in page.links)


def test_full_report_content(full_run_dir: Path) -> None:
    page = parse(build_report(full_run_dir).read_text())

    sections = page.sections
    assert "bloodmnist" in sections["dataset"]
    assert f"4 classes: 0 = {CLASS_NAMES[0]}; 1 = {CLASS_NAMES[1]}" in sections["dataset"]
    assert "1234 (seed_everything in config.yaml)" in sections["environment"]
    assert "accelerator=cpu" in sections["environment"]
    assert "lightning" in sections["environment"]
    assert "val/auc" in sections["curves"]
    assert "quantus/" not in sections["curves"]
    assert "test/acc" not in sections["curves"]
    assert "0.9712" in sections["test-metrics"]
    assert "84 test images, 74 on the diagonal" in sections["test-metrics"]
    assert "1 predicted wrongly (test index 17)" in sections["explanations"]
    assert "convergence_delta = 0.0012" in sections["explanations"]
    assert REFERENCE in sections["explanations"]
    assert "ci_low" in sections["quantus"]
    assert "holm_p" in sections["quantus"]
    assert IG_FAILURE in sections["failures"]
    assert QUANTUS_FAILURE in sections["failures"]
    assert SKIPPED_REASON in sections["failures"]
    assert "seed_everything: 1234" in sections["config"]


def point_at_checkpoint(run_dir: Path, averaged: bool) -> Path:
    """Save a minimal checkpoint, with or without averaged weights, and name it in test_metrics.json."""
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    checkpoint.parent.mkdir(exist_ok=True)
    content = {"state_dict": {"w": torch.zeros(1)}}
    if averaged:
        content["current_model_state"] = {"w": torch.ones(1)}
    torch.save(content, checkpoint)
    metrics_path = run_dir / "test_metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["checkpoint"] = str(checkpoint)
    metrics_path.write_text(json.dumps(metrics))
    return checkpoint


def test_test_metrics_say_how_computed(full_run_dir: Path) -> None:
    checkpoint = point_at_checkpoint(full_run_dir, averaged=True)
    section = parse(build_report(full_run_dir).read_text()).sections["test-metrics"]
    assert f"from checkpoint {checkpoint}" in section
    assert "exponential moving average (EMA)" in section
    assert "horizontal flip (test-time augmentation)" in section


def test_test_metrics_without_tta_or_ema(full_run_dir: Path) -> None:
    point_at_checkpoint(full_run_dir, averaged=False)
    config = full_run_dir / "config.yaml"
    config.write_text(config.read_text().replace("tta: true", "tta: false"))
    section = parse(build_report(full_run_dir).read_text()).sections["test-metrics"]
    assert "EMA" not in section
    assert "test-time augmentation" not in section


def test_metric_table_from_scores_json(full_run_dir: Path) -> None:
    quantus = parse(build_report(full_run_dir).read_text()).sections["quantus"]
    assert "better when" in quantus
    assert METRIC_REFERENCE in quantus
    assert "Pearson correlation between attribution sums and logit drops." in quantus
    assert "nr_runs=30" in quantus
    assert "display_progressbar" not in quantus  # Display switches are left out.


def test_normalised_scores_carry_caveat(full_run_dir: Path) -> None:
    quantus = parse(build_report(full_run_dir).read_text()).sections["quantus"]
    assert "stretches even small differences to the full range" in quantus
    assert "significant is p_holm < 0.05" in quantus


def test_wrong_prediction_row_marked(full_run_dir: Path) -> None:
    html_text = render_report(full_run_dir)

    assert html_text.count('<tr class="wrong">') == 1
    assert html_text.count("&#10007; wrong") == 1
    assert "true: 1 (eosinophil)" in html_text
    assert "predicted: 2 (erythroblast)" in html_text


def test_text_from_files_escaped(full_run_dir: Path) -> None:
    metrics_path = full_run_dir / "test_metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["class_names"][0] = "<script>alert(1)</script>"
    metrics_path.write_text(json.dumps(metrics))

    html_text = render_report(full_run_dir)

    assert "<script>" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "<b>not bold</b>" not in html_text
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html_text
    assert "&lt;in model&gt;" in html_text


def test_report_written_atomically(full_run_dir: Path) -> None:
    build_report(full_run_dir)
    build_report(full_run_dir)

    assert sorted(p.name for p in full_run_dir.glob("*report*")) == ["report.html"]
    assert not list(full_run_dir.glob("*.tmp"))


@pytest.mark.parametrize(
    ("missing_part", "message"),
    [
        ("config", "Missing: config.yaml. It is written by LightningCLI"),
        ("events", "Missing: events.out.tfevents.* (TensorBoard). It is written by the TensorBoard logger"),
        ("test_metrics", "Missing: test_metrics.json. It is written by the test step of medxai fit"),
        ("explanations", "Missing: explanations/. It is written by the explanation callback"),
        ("quantus", "Missing: quantus/. It is written by the Quantus evaluation callback"),
    ],
)
def test_missing_part_named(
    run_dir_factory: Callable[..., Path], missing_part: str, message: str
) -> None:
    parts = [part for part in ALL_PARTS if part != missing_part]
    run_dir = run_dir_factory(parts=parts)

    page = parse(build_report(run_dir).read_text())

    assert list(page.sections) == SECTION_IDS
    assert message in "".join(page.sections.values())


def test_missing_quantus_files_named(full_run_dir: Path) -> None:
    for name in ("summary.csv", "normalized.csv", "stats.csv", "radar.png", "scores.json"):
        (full_run_dir / "quantus" / name).unlink()

    quantus = parse(render_report(full_run_dir)).sections["quantus"]

    for name in ("summary.csv", "normalized.csv", "stats.csv", "radar.png", "scores.json"):
        assert f"Missing: quantus/{name}. It is written by the Quantus evaluation callback" in quantus


def test_hparams_only_run_renders(tmp_path: Path) -> None:
    (tmp_path / "hparams.yaml").write_text("lr: 0.1\n")

    page = parse(build_report(tmp_path).read_text())

    assert list(page.sections) == SECTION_IDS
    assert page.image_sources == []
    assert "Unknown: Missing: explanations/explanations.json" in page.sections["failures"]
    assert "unknown (no config.yaml)" in page.sections["environment"]


def test_corrupt_files_reported_in_place(full_run_dir: Path) -> None:
    (full_run_dir / "test_metrics.json").write_text("{not json")
    (full_run_dir / "explanations" / "explanations.json").write_text('"a string"')
    (full_run_dir / "quantus" / "summary.csv").write_text("")
    (full_run_dir / "quantus" / "scores.json").write_text("[1, 2]")
    (full_run_dir / "config.yaml").write_text("key: [unclosed\n")

    sections = parse(build_report(full_run_dir).read_text()).sections

    assert "Cannot read test_metrics.json: test_metrics.json is not valid JSON" in sections["test-metrics"]
    assert "explanations.json contains a str, expected an object" in sections["explanations"]
    assert "Cannot read quantus/summary.csv: summary.csv is empty" in sections["quantus"]
    assert "quantus/scores.json contains a list, expected an object" in sections["quantus"]
    assert "config.yaml is not a valid YAML mapping" in sections["config"]
    assert "val/auc" in sections["curves"]


def test_bad_confusion_matrix_reported(full_run_dir: Path) -> None:
    metrics_path = full_run_dir / "test_metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["confusion_matrix"] = [[1, 2, 3]]
    metrics_path.write_text(json.dumps(metrics))

    section = parse(render_report(full_run_dir)).sections["test-metrics"]

    assert "The confusion matrix has shape (1, 3), expected (K, K) with K > 0." in section


def test_failing_section_isolated(full_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(context: object) -> Section:
        raise RuntimeError("renderer <crashed>")

    sections = list(builder._SECTIONS)
    sections[2] = ("curves", "Training curves", broken)
    monkeypatch.setattr(builder, "_SECTIONS", tuple(sections))

    page = parse(render_report(full_run_dir))

    assert list(page.sections) == SECTION_IDS
    assert "This section failed to render: RuntimeError: renderer <crashed>" in page.sections["curves"]
    assert "0.9712" in page.sections["test-metrics"]


def test_grid_limited_to_max_samples(full_run_dir: Path) -> None:
    page = parse(render_report(full_run_dir, max_grid_samples=1))

    assert "The grid shows the first 1; every PNG is in explanations/." in page.sections["explanations"]
    # One grid row of 4 cells, summary, method grid, 3 curve plots, confusion matrix and radar.
    assert len(page.image_sources) == 11


def test_missing_overlay_png_named(full_run_dir: Path) -> None:
    (full_run_dir / "explanations" / "saliency" / "42.png").unlink()

    section = parse(render_report(full_run_dir)).sections["explanations"]

    assert "image missing: saliency/42.png" in section


def test_device_from_caller_shown(full_run_dir: Path) -> None:
    section = parse(render_report(full_run_dir, device="cuda:0 (H200)")).sections["environment"]

    assert "cuda:0 (H200)" in section
    assert "accelerator=cpu" not in section


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_invalid_max_grid_samples(full_run_dir: Path, value: object) -> None:
    with pytest.raises(ValueError, match=r"max_grid_samples must be an integer >= 1 .*got"):
        build_report(full_run_dir, max_grid_samples=value)  # type: ignore[arg-type]


def test_missing_run_dir_rejected(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="run directory not found: '.*nope'"):
        build_report(tmp_path / "nope")


def test_file_as_run_dir_rejected(tmp_path: Path) -> None:
    file_path = tmp_path / "config.yaml"
    file_path.write_text("a: 1\n")

    with pytest.raises(RunDirectoryError, match="run directory is not a folder"):
        build_report(file_path)


def test_empty_folder_rejected(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="not a run directory: .* contains none of config.yaml"):
        build_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_unchecked_empty_folder_renders(tmp_path: Path) -> None:
    path = build_report(tmp_path / "version_3", check_run_dir=False)

    assert list(parse(path.read_text()).sections) == SECTION_IDS


def test_medmnist_class_names_fallback(run_dir_factory: Callable[..., Path]) -> None:
    run_dir = run_dir_factory(parts=["config"])

    section = parse(render_report(run_dir)).sections["dataset"]

    assert "8 classes: 0 = basophil; 1 = eosinophil" in section


def test_method_grids_collapsed(full_run_dir: Path) -> None:
    write_png(full_run_dir / "explanations" / "saliency" / "grid.png", seed=5)

    html_text = render_report(full_run_dir)

    collapsed = html_text.split("<details><summary>Grids per method (2 figures)</summary>", 1)[1]
    collapsed = collapsed.split("</details>", 1)[0]
    assert "<figcaption>gradcam_grid.png</figcaption>" in collapsed
    assert "<figcaption>saliency/grid.png</figcaption>" in collapsed
    assert "<figcaption>summary.png</figcaption>" not in collapsed


def test_explained_class_shown_when_not_predicted(full_run_dir: Path) -> None:
    record_path = full_run_dir / "explanations" / "explanations.json"
    record = json.loads(record_path.read_text())
    record["samples"][1]["explained_label"] = record["samples"][1]["true_label"]
    record_path.write_text(json.dumps(record))

    section = parse(render_report(full_run_dir)).sections["explanations"]

    assert section.count("explained class:") == 1
    assert "explained class: 1 (eosinophil)" in section
