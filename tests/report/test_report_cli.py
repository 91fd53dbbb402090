"""The report command: python -m medxai.report RUN_DIR and its main()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import medxai
from medxai.report import main

REPO_ROOT = Path(medxai.__file__).resolve().parents[1]


def test_main_writes_report(full_run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(full_run_dir)])

    assert code == 0
    assert capsys.readouterr().out.strip() == str(full_run_dir.resolve() / "report.html")
    assert (full_run_dir / "report.html").is_file()


def test_main_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(tmp_path / "nope")])

    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("python -m medxai.report: error: run directory not found: ")
    assert error.count("\n") == 1


def test_main_not_a_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(tmp_path)])

    error = capsys.readouterr().err
    assert code == 2
    assert "error: not a run directory: " in error
    assert "pass a log dir such as lightning_logs/version_0" in error
    assert error.count("\n") == 1


def test_main_invalid_grid_limit(full_run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(full_run_dir), "--max-grid-samples", "0"])

    assert code == 2
    assert "error: max_grid_samples must be an integer >= 1" in capsys.readouterr().err
    assert not (full_run_dir / "report.html").exists()


def test_module_entry_point(full_run_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}

    command = [sys.executable, "-m", "medxai.report"]
    done = subprocess.run([*command, str(full_run_dir)], capture_output=True, text=True, env=env)
    missing = subprocess.run([*command, str(tmp_path / "nope")], capture_output=True, text=True, env=env)

    assert done.returncode == 0, done.stderr
    assert (full_run_dir / "report.html").is_file()
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("python -m medxai.report: error: run directory not found")


def test_main_usage_names_prog(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"], prog="medxai report")

    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: medxai report [-h]")
