"""Helpers shared by the medxai benchmarks: machine description, step timing and reports.

Every benchmark records the machine, the torch version, the thread count, the commit, the date
and the load average, because the figures are only comparable with those beside them.
Timings are reported as medians of per-step times, which resist the noise of a shared machine
better than a total divided by a count.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # Lets `python benchmarks/bench_x.py` import medxai from this checkout without `pip install -e .`.
    sys.path.insert(0, str(REPO_ROOT))

BF16_CPU_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> set[str]:
    """Return the CPU feature flags from ``/proc/cpuinfo`` (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    """Return the CPU model name from ``/proc/cpuinfo``, else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Describe the machine and software the figures come from."""
    flags = cpu_flags()
    info: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "bf16_cpu_flags": sorted(flags.intersection(BF16_CPU_FLAGS)),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "commit": git_commit(),
        "load_average": list(os.getloadavg()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_average() -> float:
    """Return the 1-minute load average (processes wanting a core, averaged)."""
    return os.getloadavg()[0]


def median(values: Sequence[float]) -> float:
    """Return the median, or NaN for an empty sequence."""
    return statistics.median(values) if values else float("nan")


def time_steps(step: Callable[[], None], warmup: int, steps: int) -> tuple[list[float], list[float]]:
    """Run ``step`` ``warmup + steps`` times and time the last ``steps``.

    Returns:
        Wall times and CPU times of this process (all threads), in seconds, one per timed step.
    """
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - started_wall)
        cpu.append(time.process_time() - started_cpu)
    return wall, cpu


def git_commit() -> str:
    """Return the short commit of the working tree, with ``+dirty`` when it has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=REPO_ROOT, check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def write_report(path: str | None, report: dict[str, Any]) -> None:
    """Print ``report`` as JSON and also write it to ``path`` when given."""
    text = json.dumps(report, indent=2, default=str)
    print(text, flush=True)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Format ``rows`` as a Markdown table with the given columns.

    Floats below 100 get 3 significant digits, larger ones are rounded to integers.
    """

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def explanation_callback_defaults() -> dict[str, Any]:
    """Return the explanation callback's default batch size and IG settings, read from its signature.

    The benchmarks explain with these, so their figures follow the defaults users get.
    """
    import inspect

    from callbacks import ExplanationCallback

    defaults = {name: parameter.default for name, parameter in inspect.signature(ExplanationCallback).parameters.items()}
    return {
        "batch_size": defaults["batch_size"],
        "ig": {"n_steps": defaults["ig_steps"], "internal_batch_size": defaults["ig_internal_batch_size"]},
    }
