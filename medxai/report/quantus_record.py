"""Readers for the Quantus callback's files: the CSV tables and ``scores.json``.

The CSVs are read generically (whatever columns exist are shown), and failures in scores.json
are found whether they sit in a top-level ``failures`` list or mapping, or as entries with a
failed status or an error inside the scores. Metrics skipped on purpose (``skipped``, metric to
reason) are read separately.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medxai.report import run_files

_VERSION_KEYS = ("versions", "library_versions", "environment", "libraries")
_FAILURE_KEYS = ("failures", "failed", "errors")
_REASON_KEYS = ("reason", "error", "message", "exception")
_FAILED_STATUSES = frozenset({"failed", "failure", "error", "nan", "skipped"})


@dataclass
class CsvTable:
    """A CSV file as its header and rows of strings."""

    header: list[str]
    rows: list[list[str]]


def read_csv(path: Path) -> CsvTable:
    """Read a CSV file with a header row.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is empty or not valid CSV.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        try:
            rows = list(csv.reader(handle))
        except csv.Error as err:
            raise ValueError(f"{path.name} is not valid CSV: {err}") from err
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError(f"{path.name} is empty")
    return CsvTable(header=rows[0], rows=rows[1:])


def versions(scores: dict[str, Any]) -> dict[str, str]:
    """Return the library versions recorded in scores.json, or an empty dict."""
    for key in _VERSION_KEYS:
        value = scores.get(key)
        if isinstance(value, dict):
            return {str(name): str(version) for name, version in value.items()}
    return {}


def failures(scores: dict[str, Any]) -> list[dict[str, object]]:
    """Return one dict per failure recorded in scores.json.

    Entries of a top-level failure list are returned as they are (for example ``method``,
    ``metric``, ``reason``, ``n_failed``, ``n_total``). A failure found deeper in a mapping gets
    a ``where`` field that joins the keys leading to it (for example ``"ig / MPRT"``) and a
    ``reason`` field.
    """
    for key in _FAILURE_KEYS:
        if key in scores and scores[key]:
            return list(_flatten_failures(scores[key], []))
    # No failure list: look for failed entries inside the rest of the file.
    found: list[dict[str, object]] = []
    for key, value in scores.items():
        if key not in _VERSION_KEYS and key not in ("config", "skipped"):
            found.extend(_scan_for_failures(value, [str(key)]))
    return found


def skipped(scores: dict[str, Any]) -> dict[str, str]:
    """Return ``{metric: reason}`` of the metrics that did not run on this data, or an empty dict."""
    value = scores.get("skipped")
    if not isinstance(value, dict):
        return {}
    return {str(metric): str(reason) for metric, reason in value.items()}


def _flatten_failures(value: Any, path: list[str]) -> Iterator[dict[str, object]]:
    if isinstance(value, list):
        for item in value:
            yield from _flatten_failures(item, path)
    elif isinstance(value, dict) and _looks_like_failure_entry(value):
        yield _with_location(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten_failures(item, [*path, str(key)])
    else:
        yield {"where": " / ".join(path) or "unknown", "reason": str(value)}


def _scan_for_failures(value: Any, path: list[str]) -> Iterator[dict[str, object]]:
    if isinstance(value, dict):
        status = value.get("status")
        failed_status = isinstance(status, str) and status.strip().lower() in _FAILED_STATUSES
        has_reason = any(value.get(key) for key in _REASON_KEYS)
        if failed_status or (has_reason and status is None):
            yield _with_location(value, path)
            return
        for key, item in value.items():
            yield from _scan_for_failures(item, [*path, str(key)])
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                yield from _scan_for_failures(item, path)


def _looks_like_failure_entry(value: dict[str, Any]) -> bool:
    return any(key in value for key in (*_REASON_KEYS, "status", "method", "metric"))


def _with_location(entry: dict[str, Any], path: list[str]) -> dict[str, object]:
    row: dict[str, object] = {"where": " / ".join(path)} if path else {}
    row.update(entry)
    if not any(entry.get(key) for key in _REASON_KEYS):
        row["reason"] = f"status {entry.get('status', 'unknown')}, no reason recorded"
    return row


def read_scores(run_dir: Path) -> dict[str, Any]:
    """Parse ``quantus/scores.json``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not a JSON object.
    """
    path = run_dir / run_files.QUANTUS_SCORES
    if not path.is_file():
        raise FileNotFoundError(path)
    data = run_files.read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{run_files.QUANTUS_SCORES} contains a {type(data).__name__}, expected an object")
    return data
