"""Which checkpoint a command uses, and what it refuses: finished runs, other datasets, bad files."""

from __future__ import annotations

import argparse
import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from medxai.checkpoints import load_checkpoint, read_hyperparameters, trained_epochs
from medxai.cli import main
from tests.cli_runs import files_under, run_dirs, run_main, tiny_run_args
from tests.conftest import write_fake_npz

FAST_RUN = ["--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]


def digest(folder: Path) -> dict[str, str]:
    """Return ``{relative path: sha256}`` of every file under ``folder``."""
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in files_under(folder)}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fake_npz(root / "breastmnist.npz", "breastmnist")
    write_fake_npz(root / "retinamnist.npz", "retinamnist")
    return root


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A BreastMNIST run that trained its one epoch and was tested; returns its output root."""
    out = tmp_path_factory.mktemp("out")
    assert main(["fit", *tiny_run_args(data_root, out, epochs=1), *FAST_RUN]) == 0
    return out


def test_trained_epochs_counts_finished_epochs(finished_run: Path) -> None:
    (run_dir,) = run_dirs(finished_run)
    assert trained_epochs(run_dir / "checkpoints" / "last.ckpt") == 1


def resume_finished_run(
    finished_run: Path, data_root: Path, epochs: int, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, dict[str, str], int, str]:
    """Run ``fit --ckpt_path last`` on the finished run; return its folder, digests before, status, stderr."""
    (run_dir,) = run_dirs(finished_run)
    before = digest(run_dir)
    argv = ["fit", *tiny_run_args(data_root, finished_run, epochs=epochs), *FAST_RUN, "--ckpt_path=last"]
    status, stderr = run_main(argv, capsys)
    return run_dir, before, status, stderr


def test_resuming_finished_run_rejected(finished_run: Path, data_root: Path, capsys) -> None:
    run_dir, before, status, stderr = resume_finished_run(finished_run, data_root, 1, capsys)

    assert status == 2
    assert "has already trained 1 epoch(s), all of --trainer.max_epochs=1" in stderr
    assert "start a new run with a larger --trainer.max_epochs" in stderr
    assert "Resuming from" not in stderr
    assert digest(run_dir) == before  # Not even config.yaml was rewritten.
    assert run_dirs(finished_run) == [run_dir]


def test_resume_longer_schedule_rejected(finished_run: Path, data_root: Path, capsys) -> None:
    """Lightning would restore the old cosine schedule, so a longer run must start anew."""
    run_dir, before, status, stderr = resume_finished_run(finished_run, data_root, 2, capsys)

    assert status == 2
    assert f"Cannot resume the run in {run_dir} with settings that change its training" in stderr
    assert "trainer.max_epochs: 1 -> 2" in stderr
    assert digest(run_dir) == before


def test_best_skips_other_datasets(finished_run: Path, data_root: Path, capsys) -> None:
    argv = [
        "test", *tiny_run_args(data_root, finished_run), "--data.dataset=retinamnist", "--ckpt_path=best",
    ]

    status, stderr = run_main(argv, capsys)

    assert status == 2
    assert "no best-epoch*.ckpt of retinamnist found" in stderr
    assert "Checkpoints of other datasets were passed over (1, e.g." in stderr
    assert "(breastmnist)" in stderr


def test_text_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.ckpt"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match="is not a complete PyTorch checkpoint: torch.save writes a zip archive"):
        load_checkpoint(path)


def test_foreign_zip_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "archive.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")
    with pytest.raises(ValueError, match=r"Cannot read checkpoint .*archive\.ckpt: \w+"):
        load_checkpoint(path)


def test_text_checkpoint_at_cli_is_one_line(finished_run: Path, data_root: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "text.ckpt"
    path.write_text("hello\n")
    status, stderr = run_main(["test", *tiny_run_args(data_root, tmp_path / "out"), f"--ckpt_path={path}"], capsys)
    assert status == 2
    assert "is not a complete PyTorch checkpoint" in stderr
    assert "Traceback" not in stderr


@pytest.fixture
def checkpoint_with_object(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the run's best checkpoint that also stores an ``argparse.Namespace``."""
    (run_dir,) = run_dirs(finished_run)
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    checkpoint["extra"] = argparse.Namespace(note="a trusted Python object")
    path = tmp_path / "trusted.ckpt"
    torch.save(checkpoint, path)
    return path


def test_weights_only_false_reads_objects(checkpoint_with_object: Path) -> None:
    with pytest.raises(ValueError, match="Pass --weights_only=false only for a file from a source you trust"):
        read_hyperparameters(checkpoint_with_object)
    assert read_hyperparameters(checkpoint_with_object, weights_only=False)["dataset"] == "breastmnist"


def test_weights_only_false_at_cli(checkpoint_with_object: Path, data_root: Path, tmp_path: Path, capsys) -> None:
    base = ["test", *tiny_run_args(data_root, tmp_path / "out"), f"--ckpt_path={checkpoint_with_object}"]

    rejected, stderr = run_main(base, capsys)
    accepted, _ = run_main([*base, "--weights_only=false"], capsys)

    assert rejected == 2
    assert "Weights only load failed" in stderr
    assert accepted == 0
    assert (tmp_path / "out" / "lightning_logs" / "version_0" / "test_metrics.json").is_file()


def test_best_picks_this_dataset_over_newer_other(finished_run: Path, data_root: Path, tmp_path: Path, capsys) -> None:
    """A newer RetinaMNIST run does not hide the BreastMNIST checkpoint from --ckpt_path best."""
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    retina = ["fit", *tiny_run_args(data_root, out, epochs=1), *FAST_RUN, "--data.dataset=retinamnist", "--test_after_fit=false"]
    assert main(retina) == 0
    capsys.readouterr()

    status = main(["test", *tiny_run_args(data_root, out), "--ckpt_path=best", "--report.enabled=false"])

    assert status == 0
    tested = [path for path in run_dirs(out) if (path / "test_metrics.json").is_file()]
    assert "breastmnist" in (tested[-1] / "test_metrics.json").read_text()
