"""The ``medxai`` console script end to end: fit, then test from the saved checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_fake_npz

pytestmark = pytest.mark.slow

FAST_CALLBACKS = [
    "--explain.subset_size=4",
    "--explain.methods=[gradcam, ig]",
    "--explain.ig_steps=8",
    "--quantus.subset_size=4",
    "--quantus.methods=[gradcam]",
    "--quantus.metrics=[Complexity, Sparseness, MaxSensitivity]",
    "--quantus.n_resamples=100",
    "--trainer.enable_progress_bar=false",
]


def medxai_command() -> list[str]:
    script = shutil.which("medxai")
    if script is None:  # Installed without the console script on PATH.
        return [sys.executable, "-m", "medxai.cli"]
    return [script]


def run_medxai(args: list[str], cwd: Path, root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDXAI_DATA_ROOT": str(root), "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [*medxai_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_fit_then_test_from_checkpoint(tmp_path: Path):
    root = tmp_path / "data"
    write_fake_npz(root / "bloodmnist.npz", "bloodmnist", counts=(64, 16, 16))
    common = ["--data.dataset=bloodmnist", "--data.check_md5=false", "--data.batch_size=16", *FAST_CALLBACKS]

    fit = run_medxai(
        ["fit", *common, "--trainer.max_epochs=2", "--trainer.limit_train_batches=2"], tmp_path, root
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "GPU available" in fit.stderr  # Lightning's run information still shows.
    assert "Tip:" not in fit.stderr  # Its advertisement for a cloud logger does not.
    run_dir = tmp_path / "lightning_logs" / "version_0"
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints
    assert any(name.startswith("best-") for name in checkpoints)
    assert (run_dir / "config.yaml").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["dataset"] == "bloodmnist"
    assert metrics["num_samples"] == 16
    assert len(metrics["confusion_matrix"]) == 8
    index = json.loads((run_dir / "explanations" / "explanations.json").read_text())
    assert index
    assert (run_dir / "explanations" / "attributions.npz").is_file()
    assert (run_dir / "quantus" / "summary.csv").is_file()
    assert (run_dir / "report.html").is_file()

    test = run_medxai(["test", *common, f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"], tmp_path, root)
    assert test.returncode == 0, test.stderr[-3000:]
    rerun_dir = tmp_path / "lightning_logs" / "version_1"
    rerun = json.loads((rerun_dir / "test_metrics.json").read_text())
    assert rerun["checkpoint"].endswith("last.ckpt")
    assert (rerun_dir / "explanations" / "attributions.npz").is_file()


def test_bad_input_is_one_line_without_traceback(tmp_path: Path):
    result = run_medxai(["fit", "--data.dataset=bloodmnst"], tmp_path, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("medxai: error:")]
    assert len(errors) == 1
    assert "Unknown dataset 'bloodmnst'" in errors[0]
