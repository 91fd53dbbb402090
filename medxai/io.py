"""Atomic file writers: a temporary file in the target folder, then a rename.

An interrupted run therefore leaves either the previous file or the complete new one,
never a truncated JSON, CSV, NPZ or PNG.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and rename it over ``path`` on success.

    Args:
        path: Final file path. Missing parent folders are created.
        mode: ``"w"`` for text or ``"wb"`` for bytes.

    Yields:
        The open temporary file. If the ``with`` block raises, the temporary file is
        removed and ``path`` is left untouched.

    Raises:
        OSError: If the folder cannot be created or written, with the folder named.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        # mkstemp creates the file readable by its owner only, so give it the mode open() would.
        os.fchmod(fd, 0o666 & ~_current_umask())
    except OSError as err:
        raise OSError(
            f"Cannot write to folder '{target.parent}': {err.strerror or err}. "
            "Choose a writable output folder (for example --trainer.default_root_dir)."
        ) from err
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically. NaN and infinity are written as ``null``.

    Args:
        path: Destination file.
        obj: JSON-serialisable object; numpy scalars and arrays are converted.
        indent: Indentation passed to :func:`json.dumps`.

    Returns:
        The destination path.
    """
    text = json.dumps(_to_jsonable(obj), indent=indent, allow_nan=False)
    return write_text(path, text + "\n")


def write_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """Save ``arrays`` into a compressed ``.npz`` atomically (no pickled objects)."""
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return Path(path)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically.

    Args:
        fig: A :class:`matplotlib.figure.Figure`.
        path: Destination ``.png`` file.
        dpi: Resolution in dots per inch.

    Returns:
        The destination path.
    """
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)


def _to_jsonable(obj: Any) -> Any:
    """Convert numpy types and non-finite floats into plain JSON values."""
    if isinstance(obj, dict):
        return {str(key): _to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _to_jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _current_umask() -> int:
    """Return the process umask, which can only be read by setting it and restoring it."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
