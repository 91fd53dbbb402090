"""Tiny end-to-end runs of the ``medxai`` console script for the DDP, resume and determinism tests.

Every run trains a few steps on fake BreastMNIST files (see :func:`tests.conftest.write_fake_npz`)
on the CPU, and keeps the explanation and Quantus callbacks to a 4-image subset with fast
methods and metrics, so one run takes seconds rather than minutes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BREAST_CONFIG = REPO_ROOT / "configs" / "breastmnist.yaml"
DDP_CONFIG = REPO_ROOT / "configs" / "ddp.yaml"


def tiny_run_args(data_root: Path, out_dir: Path, epochs: int = 2) -> list[str]:
    """Return ``medxai fit``/``test`` options for a few CPU steps and 4 explained test images."""
    return [
        f"--config={BREAST_CONFIG}",
        f"--data.root={data_root}",
        "--data.check_md5=false",
        "--data.download=false",
        "--data.batch_size=8",
        f"--trainer.default_root_dir={out_dir}",
        "--trainer.accelerator=cpu",
        f"--trainer.max_epochs={epochs}",
        "--trainer.enable_progress_bar=false",
        "--trainer.log_every_n_steps=1",
        "--explain.subset_size=4",
        "--explain.methods=[gradcam, saliency]",
        "--explain.progress=false",
        "--quantus.subset_size=4",
        "--quantus.methods=[saliency]",
        "--quantus.metrics=[Complexity, MaxSensitivity]",
        "--quantus.n_resamples=100",
    ]


def short_recipe_args(max_epochs: int) -> list[str]:
    """Return options that keep a recipe's training settings but shorten the run to a few batches.

    Quantus and the report are switched off and one image is explained with Saliency, so a run
    of a whole recipe on tiny fake files takes seconds.
    """
    return [
        "--data.check_md5", "false",
        "--data.download", "false",
        "--trainer.max_epochs", str(max_epochs),
        "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false",
        "--explain.subset_size", "1",
        "--explain.methods", "[saliency]",
        "--quantus.enabled", "false",
        "--report.after_fit", "false",
        "--report.after_test", "false",
    ]  # fmt: skip


def console_command() -> list[str]:
    """Return the installed ``medxai`` console script, or ``python -m medxai.cli`` without one."""
    script = shutil.which("medxai")
    return [script] if script else [sys.executable, "-m", "medxai.cli"]


def start_console(args: list[str], output: Path | None = None) -> subprocess.Popen[str]:
    """Start ``medxai ARGS`` in its own process group, so DDP workers can be killed with it.

    ``tests`` is importable in the child (``PYTHONPATH``), which lets a test add its own
    callback with ``--trainer.callbacks+=tests.MODULE.CLASS``. stdout and stderr go to pipes,
    or both to the file ``output`` when the caller does not read them while the run lasts,
    because a full pipe would block the run.
    """
    env = dict(os.environ)
    env.pop("MEDXAI_DEBUG", None)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [*console_command(), *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=output.open("w") if output else subprocess.PIPE,
        stderr=subprocess.STDOUT if output else subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the process group of ``process`` (the CLI and any DDP worker it launched)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_console(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``medxai ARGS`` to the end; fail the test (and kill the run) after ``timeout`` seconds."""
    process = start_console(args)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        stdout, stderr = process.communicate()
        pytest.fail(f"medxai {args[0]} timed out after {timeout} s (a hang?). Last stderr:\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_dirs(out_dir: Path) -> list[Path]:
    """Return the run folders (``lightning_logs/version_N``) under ``out_dir``, sorted by name."""
    return sorted(path for path in (out_dir / "lightning_logs").glob("*") if path.is_dir())


def files_under(folder: Path) -> list[str]:
    """Return the paths of all files under ``folder``, relative to it and sorted."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``medxai.cli.main`` in this process and return its exit status and stderr."""
    from medxai.cli import main

    status = main(argv)
    return status, capsys.readouterr().err
