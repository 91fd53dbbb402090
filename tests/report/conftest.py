"""Fixtures that build run directories for the report tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.report.report_fixtures import ALL_PARTS, make_run_dir


@pytest.fixture(scope="session")
def run_dir_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run directory, built once and copied by :func:`full_run_dir`."""
    return make_run_dir(tmp_path_factory.mktemp("template"))


@pytest.fixture
def full_run_dir(tmp_path: Path, run_dir_template: Path) -> Path:
    """A private copy of the complete run directory that a test may change."""
    run_dir = tmp_path / "lightning_logs" / "version_0"
    shutil.copytree(run_dir_template, run_dir)
    return run_dir


@pytest.fixture
def run_dir_factory(tmp_path: Path) -> Callable[..., Path]:
    """Build run directories with only some parts, each in its own folder."""
    counter = iter(range(1000))

    def factory(parts: Iterable[str] = ALL_PARTS) -> Path:
        return make_run_dir(tmp_path / f"run{next(counter)}", parts)

    return factory
