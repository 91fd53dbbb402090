"""``medxai fit`` under DDP: two CPU processes (gloo) with ``configs/ddp.yaml``.

One run fits, tests the best checkpoint and runs the explanation, Quantus and report
callbacks. The test split has an odd size, so a padding sampler would count a sample twice.
The same checkpoint is then tested in one process and both results are compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medxai.cli import main
from tests.cli_runs import DDP_CONFIG, files_under, run_console, run_dirs, tiny_run_args
from tests.conftest import write_fake_npz

pytestmark = pytest.mark.slow

TEST_SIZE = 13  # odd: two ranks would get 7 + 7 samples from a padding DistributedSampler
DDP_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fake_npz(root / "breastmnist.npz", "breastmnist", counts=(32, 11, TEST_SIZE))
    return root


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Any]:
    out_dir = tmp_path_factory.mktemp("ddp")
    args = [
        "fit",
        *tiny_run_args(data_root, out_dir),
        f"--config={DDP_CONFIG}",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
    ]
    done = run_console(args, timeout=DDP_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    return {"out_dir": out_dir, "stderr": done.stderr}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path, ddp_run: dict[str, Any]) -> Path:
    """Test the DDP run's best checkpoint in this process, on one device."""
    (run_dir,) = run_dirs(ddp_run["out_dir"])
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    out_dir = tmp_path_factory.mktemp("single")
    status = main(["test", *tiny_run_args(data_root, out_dir), "--trainer.devices=1", f"--ckpt_path={best}"])
    assert status == 0
    (single_dir,) = run_dirs(out_dir)
    return single_dir


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_ddp_ran_two_processes(ddp_run):
    assert "distributed_backend=gloo" in ddp_run["stderr"]
    assert "Starting with 2 processes" in ddp_run["stderr"]


def test_ddp_writes_one_set_of_outputs(ddp_run):
    (run_dir,) = run_dirs(ddp_run["out_dir"])
    files = files_under(run_dir)
    for expected in (
        "config.yaml",
        "test_metrics.json",
        "report.html",
        "explanations/explanations.json",
        "explanations/attributions.npz",
        "quantus/scores.json",
        "quantus/summary.csv",
        "checkpoints/last.ckpt",
    ):
        assert files.count(expected) == 1, f"{expected} missing in {files}"
    assert len([name for name in files if name.startswith("checkpoints/best-")]) == 1
    assert not [name for name in files if name.endswith(".tmp")]
    assert files_under(ddp_run["out_dir"]) == [f"lightning_logs/{run_dir.name}/{name}" for name in files]


def test_ddp_counts_each_test_sample_once(ddp_run):
    (run_dir,) = run_dirs(ddp_run["out_dir"])
    results = read_json(run_dir / "test_metrics.json")
    assert results["num_samples"] == TEST_SIZE
    assert sum(map(sum, results["confusion_matrix"])) == TEST_SIZE
    assert sum(row["support"] for row in results["per_class"]) == TEST_SIZE


def test_ddp_explains_each_index_once(ddp_run):
    (run_dir,) = run_dirs(ddp_run["out_dir"])
    index = read_json(run_dir / "explanations/explanations.json")
    explained = [sample["index"] for sample in index["samples"]]
    scored = read_json(run_dir / "quantus/scores.json")["samples"]["index"]
    assert len(explained) == 4
    assert len(set(explained)) == 4
    assert sorted(scored) == sorted(set(scored))
    assert len(scored) == 4
    with np.load(run_dir / "explanations/attributions.npz") as arrays:
        assert arrays["indices"].tolist() == explained
        assert arrays["gradcam"].shape[0] == 4


def test_ddp_metrics_equal_single_process(ddp_run, single_run):
    (run_dir,) = run_dirs(ddp_run["out_dir"])
    ddp = read_json(run_dir / "test_metrics.json")
    single = read_json(single_run / "test_metrics.json")
    assert ddp["confusion_matrix"] == single["confusion_matrix"]
    assert ddp["num_samples"] == single["num_samples"]
    assert ddp["metrics"].keys() == single["metrics"].keys()
    for name, value in single["metrics"].items():
        assert ddp["metrics"][name] == pytest.approx(value, abs=1e-6), name


def test_ddp_maps_equal_single_process(ddp_run, single_run):
    (run_dir,) = run_dirs(ddp_run["out_dir"])
    with np.load(run_dir / "explanations/attributions.npz") as ddp, np.load(
        single_run / "explanations/attributions.npz"
    ) as single:
        assert ddp["indices"].tolist() == single["indices"].tolist()
        for method in ("gradcam", "saliency"):
            np.testing.assert_allclose(ddp[method], single[method], atol=1e-5, err_msg=method)
