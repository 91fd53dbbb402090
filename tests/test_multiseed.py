"""Tests for benchmarks/multiseed.py: aggregation, argument checks and real medxai runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import multiseed
from benchmarks.multiseed import SeedRun, read_metrics, run_multiseed, summarize
from tests.cli_runs import short_recipe_args

REPO_ROOT = Path(__file__).resolve().parents[1]
BREAST_RECIPE = REPO_ROOT / "configs" / "breastmnist.yaml"
TINY_RUN = short_recipe_args(max_epochs=1)


def _run(seed: int, wall_s: float, **metrics: float) -> SeedRun:
    return SeedRun(seed=seed, command=["medxai"], returncode=0, wall_s=wall_s, cpu_s=2 * wall_s, metrics=dict(metrics))


def test_summarize_mean_and_sample_std():
    runs = [_run(0, 10.0, acc=0.8, auc=0.9), _run(1, 20.0, acc=0.9, auc=0.7), _run(2, 30.0, acc=1.0, auc=0.8)]
    summary = summarize(runs)
    assert list(summary) == ["acc", "auc", "wall_s", "cpu_s"]
    assert summary["acc"]["mean"] == pytest.approx(0.9)
    assert summary["acc"]["std"] == pytest.approx(0.1)  # ddof=1
    assert summary["auc"]["values"] == [0.9, 0.7, 0.8]
    assert summary["wall_s"]["mean"] == pytest.approx(20.0)
    assert summary["cpu_s"]["mean"] == pytest.approx(40.0)


def test_summarize_skips_failed_runs():
    failed = _run(1, 5.0, acc=0.1)
    failed.error = "exit status 1"
    summary = summarize([_run(0, 10.0, acc=0.8), failed])
    assert summary["acc"]["n"] == 1
    assert summary["acc"]["std"] is None
    assert summary["acc"]["values"] == [0.8]


def test_summarize_orders_known_metrics_first():
    summary = summarize([_run(0, 1.0, zeta=1.0, mae=0.5, qwk=0.4, acc=0.5)])
    assert list(summary) == ["acc", "qwk", "mae", "zeta", "wall_s", "cpu_s"]


def test_read_metrics_parses_checkpoint_name(tmp_path: Path):
    path = tmp_path / "test_metrics.json"
    content = {"metrics": {"acc": 0.875, "auc": 0.9}, "checkpoint": "/x/best-epoch17-val_auc0.9123.ckpt"}
    path.write_text(json.dumps(content))
    assert read_metrics(path) == {"acc": 0.875, "auc": 0.9, "best_epoch": 17.0, "val_auc": 0.9123}


def test_read_metrics_without_checkpoint_name(tmp_path: Path):
    path = tmp_path / "test_metrics.json"
    path.write_text(json.dumps({"metrics": {"acc": 0.5}, "checkpoint": None}))
    assert read_metrics(path) == {"acc": 0.5}


def test_read_metrics_rejects_invalid_json(tmp_path: Path):
    path = tmp_path / "test_metrics.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="Invalid JSON in"):
        read_metrics(path)


def test_read_metrics_rejects_missing_metrics(tmp_path: Path):
    path = tmp_path / "test_metrics.json"
    path.write_text(json.dumps({"dataset": "breastmnist"}))
    with pytest.raises(ValueError, match="Missing 'metrics' mapping"):
        read_metrics(path)


@pytest.mark.parametrize(
    ("seeds", "timeout_s", "message"),
    [
        ([], None, "No seeds given"),
        ([0, 0], None, "each seed may appear only once"),
        ([-1], None, "expected integers >= 0"),
        ([0], 0.0, "expected a positive number of seconds"),
    ],
)
def test_run_multiseed_rejects_invalid_arguments(tmp_path: Path, seeds: list[int], timeout_s, message: str):
    with pytest.raises(ValueError, match=message):
        run_multiseed(BREAST_RECIPE, seeds, tmp_path, timeout_s=timeout_s)


def test_run_multiseed_rejects_missing_config(tmp_path: Path):
    with pytest.raises(ValueError, match="Config file not found: '.*nope.yaml'"):
        run_multiseed(tmp_path / "nope.yaml", [0], tmp_path)


def test_main_returns_2_for_invalid_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert multiseed.main(["--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 2
    assert "multiseed: error: Config file not found" in capsys.readouterr().err


def test_parse_args_splits_medxai_arguments():
    args, extra = multiseed.parse_args(["--config", "c/x.yaml", "--seeds", "3", "4", "--", "--trainer.max_epochs", "1"])
    assert args.seeds == [3, 4]
    assert args.out == Path("lightning_logs/multiseed/x")
    assert extra == ["--trainer.max_epochs", "1"]


def test_build_command_puts_extra_arguments_last(tmp_path: Path):
    command = multiseed.build_command(BREAST_RECIPE, 7, tmp_path, "/data", ["--trainer.max_epochs", "1"])
    assert command[1:4] == ["-m", "medxai.cli", "fit"]
    assert command[command.index("--seed_everything") + 1] == "7"
    assert command[command.index("--data.root") + 1] == "/data"
    assert command[-2:] == ["--trainer.max_epochs", "1"]


@pytest.mark.slow
def test_two_seeds_end_to_end_and_reuse(fake_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    runs = run_multiseed(BREAST_RECIPE, [0, 1], out, data_root=str(fake_root), extra=TINY_RUN)

    assert [run.seed for run in runs] == [0, 1]
    for run in runs:
        assert run.ok, run.error
        assert 0.0 <= run.metrics["auc"] <= 1.0
        assert (out / f"seed_{run.seed}" / "run.json").is_file()
        assert Path(run.log_dir or "").parent == out / f"seed_{run.seed}" / "lightning_logs"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["acc"]["n"] == 2
    assert summary["seeds"] == [0, 1]
    table = (out / "summary.md").read_text()
    assert "| acc |" in table
    assert "+-" in table
    assert "--seed_everything 1" in table

    # A second call reuses both finished runs instead of training again.
    again = run_multiseed(BREAST_RECIPE, [0, 1], out, data_root=str(fake_root), extra=TINY_RUN)
    assert [run.metrics for run in again] == [run.metrics for run in runs]
    assert len(list((out / "seed_0" / "lightning_logs").glob("version_*"))) == 1


@pytest.mark.slow
def test_failed_seed_is_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    argv = ["--config", str(BREAST_RECIPE), "--seeds", "5", "--out", str(tmp_path / "out")]
    argv += ["--data-root", str(empty_root), "--", *TINY_RUN]
    assert multiseed.main(argv) == 1

    record = json.loads((tmp_path / "out" / "seed_5" / "run.json").read_text())
    assert record["returncode"] == 2
    assert record["error"].startswith("exit status 2")
    assert "breastmnist.npz" in record["error"]
    assert "FAILED: exit status 2" in capsys.readouterr().out
