"""Resuming ``medxai fit`` with ``--ckpt_path last`` after a SIGKILL in the middle of an epoch.

The resumed run must end where an uninterrupted run with the same seed ends. Resuming restores
the model, optimizer and loop states and the RNG states saved with the datamodule, so on the CPU
both runs are bitwise equal. The checks allow 1e-6 absolute for the weights and the metrics.
"""

from __future__ import annotations

import ast
import io
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from medxai.checkpoints import (
    collect_rng_states,
    continue_run_folder,
    find_newest_checkpoint,
    restore_rng_states,
)
from medxai.cli import main
from tests.cli_runs import (
    REPO_ROOT,
    files_under,
    kill_group,
    run_console,
    run_dirs,
    start_console,
    tiny_run_args,
)
from tests.conftest import write_fake_npz

TOLERANCE = 1e-6
# Calls that write a file in place. medxai/io.py wraps them in a temporary file and a rename.
FILE_WRITERS = {"savefig", "save", "savez", "savez_compressed", "write_text", "write_bytes", "dump", "to_csv"}
# (file, call) pairs that match FILE_WRITERS by name but write to memory: figures.py renders
# PNGs into a buffer, and cli.py dumps a config to a string.
IN_MEMORY_WRITERS = {("medxai/report/figures.py", "savefig"), ("medxai/cli.py", "dump")}
EPOCHS = 2
RUN_TIMEOUT_S = 240


class PauseMidEpoch(Callback):
    """Write ``marker`` and sleep at one training batch, so that the test can SIGKILL the run there."""

    def __init__(self, marker: str, epoch: int = 1, batch: int = 1) -> None:
        self.marker = marker
        self.epoch = epoch
        self.batch = batch

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            Path(self.marker).write_text(f"{trainer.current_epoch} {batch_idx}")
            time.sleep(600)


def fit_args(data_root: Path, out_dir: Path) -> list[str]:
    # Select the best checkpoint on val/loss, which still improves in the resumed epoch, so the
    # test metrics come from it (val/auc reaches 1.0 after one epoch on these images).
    return [
        "fit",
        *tiny_run_args(data_root, out_dir, epochs=EPOCHS),
        "--checkpoint.monitor=val/loss",
        "--checkpoint.mode=min",
    ]


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fake_npz(root / "breastmnist.npz", "breastmnist", counts=(24, 12, 12))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Any]:
    """An uninterrupted run, and alongside it a run killed and resumed, with the same seed."""
    reference_dir = tmp_path_factory.mktemp("reference")
    reference_log = reference_dir.parent / f"{reference_dir.name}.log"
    reference = start_console(fit_args(data_root, reference_dir), output=reference_log)
    try:
        resumed = kill_and_resume(tmp_path_factory.mktemp("resumed"), data_root)
        reference.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if reference.poll() is None:
            kill_group(reference)
            reference.wait()
    assert reference.returncode == 0, reference_log.read_text()[-4000:]
    (resumed["reference"],) = run_dirs(reference_dir)
    return resumed


@pytest.fixture(scope="module")
def reference_run(runs: dict[str, Any]) -> Path:
    return runs["reference"]


@pytest.fixture(scope="module")
def resumed_run(runs: dict[str, Any]) -> dict[str, Any]:
    return runs


def kill_and_resume(out_dir: Path, data_root: Path) -> dict[str, Any]:
    """SIGKILL a run at batch 1 of epoch 1 (of 3 batches), then rerun it with --ckpt_path last."""
    marker = out_dir / "paused"
    pause = [f"--trainer.callbacks+={__name__}.PauseMidEpoch", f"--trainer.callbacks.marker={marker}"]
    output = out_dir.parent / f"{out_dir.name}-killed.log"
    process = start_console([*fit_args(data_root, out_dir), *pause], output=output)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), f"the run never reached the pause: {output.read_text()[-4000:]}"
    finally:
        if process.poll() is None:
            kill_group(process)
            process.wait()
    killed = {"marker": marker.read_text(), "files": files_under(out_dir), "returncode": process.returncode}
    (run_dir,) = run_dirs(out_dir)
    killed["last_epoch"] = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["epoch"]

    done = run_console([*fit_args(data_root, out_dir), "--ckpt_path=last"], timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    return {"out_dir": out_dir, "killed": killed, "stderr": done.stderr}


@pytest.mark.slow
def test_kill_happened_mid_epoch(resumed_run):
    killed = resumed_run["killed"]
    assert killed["returncode"] == -9
    assert killed["marker"] == "1 1"
    assert killed["last_epoch"] == 0
    assert not [name for name in killed["files"] if name.endswith("test_metrics.json")]


@pytest.mark.slow
def test_resume_continues_in_same_folder(resumed_run):
    (run_dir,) = run_dirs(resumed_run["out_dir"])
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"Resuming from {last}" in resumed_run["stderr"]
    assert (run_dir / "test_metrics.json").is_file()
    assert (run_dir / "explanations" / "explanations.json").is_file()
    assert torch.load(last, weights_only=True)["epoch"] == EPOCHS - 1


@pytest.mark.slow
def test_resume_keeps_run_config(resumed_run):
    """The killed run's config.yaml stays; the resuming command's settings go beside it."""
    (run_dir,) = run_dirs(resumed_run["out_dir"])
    assert "PauseMidEpoch" in (run_dir / "config.yaml").read_text()
    assert "PauseMidEpoch" not in (run_dir / "config-resume-1.yaml").read_text()
    warning = " ".join(resumed_run["stderr"].split())
    assert "Resuming with settings that differ from" in warning
    assert "trainer.callbacks" in warning


@pytest.mark.slow
def test_resumed_weights_equal_uninterrupted(resumed_run, reference_run):
    (run_dir,) = run_dirs(resumed_run["out_dir"])
    resumed = state_dict(run_dir / "checkpoints/last.ckpt")
    reference = state_dict(reference_run / "checkpoints/last.ckpt")
    assert resumed.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, atol=TOLERANCE, rtol=0, msg=name)


@pytest.mark.slow
def test_resumed_metrics_equal_uninterrupted(resumed_run, reference_run):
    (run_dir,) = run_dirs(resumed_run["out_dir"])
    resumed = json.loads((run_dir / "test_metrics.json").read_text())
    reference = json.loads((reference_run / "test_metrics.json").read_text())
    assert Path(resumed["checkpoint"]).name == Path(reference["checkpoint"]).name
    assert Path(resumed["checkpoint"]).name.startswith(f"best-epoch{EPOCHS - 1:02d}")
    assert resumed["confusion_matrix"] == reference["confusion_matrix"]
    for name, value in reference["metrics"].items():
        assert resumed["metrics"][name] == pytest.approx(value, abs=TOLERANCE), name


@pytest.mark.slow
def test_checkpoint_loads_weights_only(reference_run):
    checkpoint = torch.load(reference_run / "checkpoints/last.ckpt", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert hparams["dataset"] == "breastmnist"
    assert all(isinstance(value, (str, int, float, bool, list, type(None))) for value in hparams.values())
    assert "rng_states" in checkpoint["MedMNISTDataModule"]


def test_rng_states_roundtrip_weights_only():
    buffer = io.BytesIO()
    torch.save(collect_rng_states(), buffer)
    expected = (random.random(), np.random.rand(), torch.rand(3))
    buffer.seek(0)
    restore_rng_states(torch.load(buffer, weights_only=True))
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])


def test_find_newest_checkpoint_picks_newest(tmp_path):
    for version, mtime in ((0, 1_000), (1, 3_000), (2, 2_000)):
        path = tmp_path / "lightning_logs" / f"version_{version}" / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        os.utime(path, (mtime, mtime))
    (tmp_path / "lightning_logs" / "version_3").mkdir()
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=TensorBoardLogger(tmp_path), accelerator="cpu")

    checkpoint, searched = find_newest_checkpoint(trainer, "last.ckpt")

    assert searched == tmp_path / "lightning_logs"
    assert checkpoint == tmp_path / "lightning_logs" / "version_1" / "checkpoints" / "last.ckpt"
    assert continue_run_folder(trainer, checkpoint) == checkpoint.parent.parent
    assert trainer.logger.version == 1
    assert Path(trainer.log_dir) == tmp_path / "lightning_logs" / "version_1"


def test_fit_last_without_run_starts_fresh(tmp_path, capsys):
    root = tmp_path / "data"
    write_fake_npz(root / "breastmnist.npz", "breastmnist")
    args = [
        "fit",
        *tiny_run_args(root, tmp_path / "out", epochs=1),
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        "--test_after_fit=false",
        "--report.after_fit=false",
        "--ckpt_path=last",
    ]
    with pytest.warns(UserWarning, match="no last.ckpt of breastmnist found under .*, so training starts from scratch"):
        assert main(args) == 0
    assert [path.name for path in run_dirs(tmp_path / "out")] == ["version_0"]
    assert (tmp_path / "out/lightning_logs/version_0/checkpoints/last.ckpt").is_file()


def direct_file_writes(path: Path) -> list[str]:
    """List the calls in ``path`` that write a file without medxai.io: ``open`` for writing and
    methods named in FILE_WRITERS (``np.save``, ``Path.write_text``, ``fig.savefig`` ...)."""
    relative = path.relative_to(REPO_ROOT).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "open":
            modes = [arg.value for arg in node.args[1:2] if isinstance(arg, ast.Constant)]
            for keyword in node.keywords:
                if keyword.arg == "mode" and isinstance(keyword.value, ast.Constant):
                    modes.append(keyword.value.value)
            if any(set(str(mode)) & set("wax+") for mode in modes):
                found.append(f"{relative}:{node.lineno} open(..., {modes[0]!r})")
        elif isinstance(func, ast.Attribute) and name in FILE_WRITERS and node.args:
            if (relative, name) not in IN_MEMORY_WRITERS:
                found.append(f"{relative}:{node.lineno} {name}()")
    return found


def test_outputs_written_only_through_io():
    sources = sorted((REPO_ROOT / "medxai").rglob("*.py")) + sorted((REPO_ROOT / "callbacks").rglob("*.py"))
    offenders = [hit for path in sources if path.name != "io.py" for hit in direct_file_writes(path)]
    assert len(sources) > 20
    assert offenders == []
