"""benchmarks/bench_step_profile.py: every operator group it reports is found in a real profile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "bench_step_profile.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("profile") / "profile.json"
    command = [
        sys.executable, str(SCRIPT), "--size", "28", "--batch-size", "2", "--warmup", "1",
        "--rounds", "1", "--steps", "1", "--threads", "1", "--by-shape", "--json", str(path),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    return json.loads(path.read_text(encoding="utf-8"))


def test_named_groups_are_found(report: dict) -> None:
    rows = {row["part"]: row for row in report["rows"]}
    # A group at zero would mean the operator was renamed and its time went to "other".
    for part in ("conv forward", "conv backward", "copies", "optimizer"):
        assert rows[part]["fp32_ms"] > 0, part
        assert rows[part]["bf16_ms"] > 0, part


def test_step_is_sum_of_groups(report: dict) -> None:
    rows = {row["part"]: row for row in report["rows"]}
    parts = [part for part in rows if part != "step"]
    assert rows["step"]["fp32_ms"] == pytest.approx(sum(rows[part]["fp32_ms"] for part in parts))


def test_backward_split_by_layer(report: dict) -> None:
    shapes = [row["input_shapes"] for row in report["conv_backward_by_shape"]]
    # ResNet-18 with the small stem at 28 px: feature maps of 28, 14, 7 and 4 pixels.
    assert any("[2, 64, 28, 28]" in shape for shape in shapes)
    assert any("[2, 512, 4, 4]" in shape for shape in shapes)
