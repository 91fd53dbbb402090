"""Fixtures that build run directories for the report tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from tests.report.report_fixtures import ALL_PARTS, make_run_dir


@pytest.fixture
def full_run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path)


@pytest.fixture
def run_dir_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def factory(parts: Iterable[str] = ALL_PARTS) -> Path:
        return make_run_dir(tmp_path / f"run{next(counter)}", parts)

    return factory
