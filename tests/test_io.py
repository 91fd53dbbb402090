"""Atomic writers in medxai.io."""

from __future__ import annotations

import os
from pathlib import Path

from medxai.io import write_text


def test_written_file_follows_umask(tmp_path: Path):
    previous = os.umask(0o022)
    try:
        path = tmp_path / "result.json"
        write_text(path, "{}")
    finally:
        os.umask(previous)
    assert path.read_text() == "{}"
    assert path.stat().st_mode & 0o777 == 0o644
