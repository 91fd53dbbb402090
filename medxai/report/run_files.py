"""File layout of a run directory, the component that writes each file, and readers for them.

A run directory is a Lightning log dir (``lightning_logs/version_N/``). The report only reads it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
HPARAMS = "hparams.yaml"
TEST_METRICS = "test_metrics.json"
EXPLANATIONS_DIR = "explanations"
EXPLANATIONS_JSON = "explanations/explanations.json"
QUANTUS_DIR = "quantus"
QUANTUS_SCORES = "quantus/scores.json"
QUANTUS_SUMMARY = "quantus/summary.csv"
QUANTUS_NORMALIZED = "quantus/normalized.csv"
QUANTUS_STATS = "quantus/stats.csv"
QUANTUS_RADAR = "quantus/radar.png"
REPORT = "report.html"
EVENT_FILE_PREFIX = "events.out.tfevents."

# Writer of each file, quoted in the report when the file is missing.
WRITERS = {
    CONFIG: "LightningCLI (medxai fit saves the full config when the run starts)",
    "events": "the TensorBoard logger during fit (the default logger of medxai fit)",
    TEST_METRICS: "the test step of medxai fit (after training, on the best checkpoint)",
    EXPLANATIONS_DIR: "the explanation callback, after test",
    QUANTUS_DIR: "the Quantus evaluation callback, after test",
}

# A folder that contains none of these is not a run directory.
_RUN_MARKERS = (CONFIG, HPARAMS, TEST_METRICS, EXPLANATIONS_DIR, QUANTUS_DIR, "checkpoints", REPORT)


class RunDirectoryError(ValueError):
    """Raised when a path is missing or is not a Lightning run directory."""


def resolve_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """Check that ``run_dir`` is a run directory and return it as an absolute path.

    Args:
        run_dir: A Lightning log dir such as ``lightning_logs/version_0``.

    Returns:
        The resolved path.

    Raises:
        RunDirectoryError: If the path does not exist, is not a folder, or contains no run file
            (a TensorBoard event file or one of config.yaml, hparams.yaml, test_metrics.json,
            explanations/, quantus/, checkpoints/, report.html).
    """
    path = Path(run_dir).expanduser()
    if not path.exists():
        raise RunDirectoryError(f"run directory not found: '{run_dir}'")
    if not path.is_dir():
        raise RunDirectoryError(f"run directory is not a folder: '{run_dir}'")
    has_marker = any((path / name).exists() for name in _RUN_MARKERS)
    if not has_marker and not event_files(path):
        expected = ", ".join([*_RUN_MARKERS, EVENT_FILE_PREFIX + "*"])
        raise RunDirectoryError(
            f"not a run directory: '{run_dir}' contains none of {expected}; "
            "pass a log dir such as lightning_logs/version_0"
        )
    return path.resolve()


def event_files(run_dir: Path) -> list[Path]:
    """Return the TensorBoard event files directly inside ``run_dir``, sorted by name."""
    return sorted(p for p in run_dir.glob(EVENT_FILE_PREFIX + "*") if p.is_file())


def missing_message(relative_path: str, writer_key: str) -> str:
    """Return the sentence shown in place of a section whose input file is missing."""
    return f"Missing: {relative_path}. It is written by {WRITERS[writer_key]}."


def read_json(path: Path) -> Any:
    """Parse a JSON file. Non-standard ``NaN`` and ``Infinity`` tokens are accepted.

    Raises:
        ValueError: If the file is not valid JSON, with the path and the parser's message.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path.name} is not valid JSON: {err}") from err


def read_config(run_dir: Path) -> tuple[str | None, dict[str, Any] | None]:
    """Read ``config.yaml`` as text and, when it parses, as a mapping.

    Returns:
        ``(text, mapping)``. ``text`` is None when the file is missing. ``mapping`` is None when
        the file is missing or is not a YAML mapping. A parse error is logged, not raised,
        because the text alone is still worth showing.
    """
    path = run_dir / CONFIG
    if not path.is_file():
        return None, None
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as err:
        log.warning("Could not parse %s as YAML: %s", path, err)
        return text, None
    return text, parsed if isinstance(parsed, dict) else None
