"""Two CPU runs of ``medxai fit`` with the same seed give identical results, without network access.

Both runs happen in this process with every outgoing socket connection and DNS lookup
blocked and recorded: besides the explicit medmnist and torchvision downloads (off here),
nothing in a run may try to reach the network.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medxai.cli import main
from tests.cli_runs import run_dirs, tiny_run_args
from tests.conftest import write_fake_npz

pytestmark = pytest.mark.slow


class NetworkBlocked(OSError):
    """Raised in place of a socket connection or DNS lookup during the runs."""


@pytest.fixture(scope="module")
def connection_attempts() -> list[str]:
    return []


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, connection_attempts: list[str]) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    write_fake_npz(root / "breastmnist.npz", "breastmnist")

    def block(kind: str) -> Any:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            connection_attempts.append(f"{kind} {args!r}")
            raise NetworkBlocked(f"network access blocked by the test: {kind}")

        return blocked

    run_dirs_found = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", block("socket.connect"))
        patch.setattr(socket.socket, "connect_ex", block("socket.connect_ex"))
        patch.setattr(socket, "getaddrinfo", block("getaddrinfo"))
        patch.setattr(socket, "create_connection", block("create_connection"))
        for name in ("first", "second"):
            out_dir = tmp_path_factory.mktemp(name)
            assert main(["fit", *tiny_run_args(root, out_dir)]) == 0
            (run_dir,) = run_dirs(out_dir)
            run_dirs_found.append(run_dir)
    first, second = run_dirs_found
    return first, second


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_runs_open_no_connection(two_runs, connection_attempts):
    assert connection_attempts == []


def test_same_seed_same_test_metrics(two_runs):
    first, second = (read_json(run / "test_metrics.json") for run in two_runs)
    assert first["metrics"] == second["metrics"]
    assert first["confusion_matrix"] == second["confusion_matrix"]
    assert Path(first["checkpoint"]).name == Path(second["checkpoint"]).name


def test_same_seed_same_attribution_maps(two_runs):
    first, second = (np.load(run / "explanations" / "attributions.npz") for run in two_runs)
    with first, second:
        assert first.files == second.files
        for key in first.files:
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        assert np.abs(first["saliency"]).sum() > 0


def test_same_seed_same_quantus_scores(two_runs):
    first, second = (read_json(run / "quantus" / "scores.json") for run in two_runs)
    assert first["samples"] == second["samples"]
    assert first["scores"] == second["scores"]
    assert first["metrics"] == second["metrics"]
    assert not first["failures"]
    scores = first["scores"]["saliency"]["MaxSensitivity"]
    assert len(scores) == 4
    assert all(isinstance(score, float) for score in scores)
