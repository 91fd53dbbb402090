"""Run one medxai recipe for several seeds and tabulate the test metrics as mean +- std.

Each seed is a separate ``medxai fit`` process (``python -m medxai.cli fit``), so runs do not
share RNG state, threads or memory. Each run writes into ``OUT/seed_<S>/lightning_logs/``, and
this script reads the ``test_metrics.json`` that ``medxai fit`` writes after testing the
checkpoint selected on ``val/auc``. Per seed it stores ``run.json`` (command, exit status, wall
time, load average, metrics, error). At the end it writes ``summary.json`` and ``summary.md``
(a table of mean +- sample standard deviation per metric, the commands, the seeds, the wall
times and the software versions) into ``OUT``.

A seed that fails is recorded with its reason and the remaining seeds still run. The exit
status is then 1. A seed whose ``run.json`` already records a finished run is reused, not
rerun, unless ``--rerun`` is given, so an interrupted batch can be resumed.

Wall times depend on the machine and on what else runs on it, so the load average (from
``os.getloadavg``) is recorded at the start and end of each run.

Example:
    OMP_NUM_THREADS=2 python benchmarks/multiseed.py --config configs/breastmnist.yaml \\
        --seeds 0 1 2 --data-root ../shared/data/medmnist -- --report.after_fit false
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medxai.io import write_json, write_text

log = logging.getLogger("multiseed")

TEST_METRICS_FILE = "test_metrics.json"
RUN_FILE = "run.json"
# Metrics shown first, in this order. Any other scalar metric follows alphabetically.
METRIC_ORDER: tuple[str, ...] = ("acc", "auc", "f1_macro", "qwk", "mae")
# Read from the best checkpoint's name, e.g. "best-epoch17-val_auc0.9123.ckpt".
CHECKPOINT_FIELDS: dict[str, re.Pattern[str]] = {
    "best_epoch": re.compile(r"epoch(\d+)"),
    "val_auc": re.compile(r"val_auc(\d+\.\d+)"),
}
# SeedRun fields summarised next to the metrics.
TIMING_FIELDS: tuple[str, ...] = ("wall_s", "cpu_s")
STDERR_TAIL_CHARS = 2000


@dataclass
class SeedRun:
    """Outcome of one seed's ``medxai fit`` process.

    Attributes:
        seed: Value passed as ``--seed_everything``.
        command: The argument list that was run.
        returncode: Exit status of the process (``None`` if it did not finish).
        wall_s: Seconds from start to exit of the process.
        cpu_s: User plus system CPU seconds of the process and its children. Unlike
            ``wall_s`` it depends much less on other load, so ``cpu_s / OMP_NUM_THREADS``
            estimates the wall time on otherwise idle cores.
        load_start: 1, 5 and 15 minute load averages when the process started.
        load_end: The same when it ended.
        started_at: Start time, ISO 8601 in UTC.
        log_dir: Folder that contains the run's ``test_metrics.json``.
        metrics: Scalar test metrics, plus ``best_epoch`` and ``val_auc`` when the checkpoint
            name contains them.
        error: Why the run counts as failed, or ``None``.
    """

    seed: int
    command: list[str]
    returncode: int | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    load_start: list[float] = field(default_factory=list)
    load_end: list[float] = field(default_factory=list)
    started_at: str = ""
    log_dir: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run finished and its test metrics were read."""
        return self.error is None and bool(self.metrics)


def build_command(config: Path, seed: int, run_dir: Path, data_root: str | None, extra: list[str]) -> list[str]:
    """Return the ``medxai fit`` argument list for one seed.

    Args:
        config: Recipe YAML.
        seed: Value for ``--seed_everything``.
        run_dir: Folder that becomes ``--trainer.default_root_dir``.
        data_root: Value for ``--data.root``, or ``None`` to keep the recipe's.
        extra: Further CLI arguments, appended last so they override the recipe.

    Returns:
        The command, starting with this interpreter and ``-m medxai.cli fit``.
    """
    command = [sys.executable, "-m", "medxai.cli", "fit", "--config", str(config), "--seed_everything", str(seed)]
    command += ["--trainer.default_root_dir", str(run_dir)]
    if data_root is not None:
        command += ["--data.root", data_root]
    return command + list(extra)


def find_test_metrics(run_dir: Path, newer_than: float = 0.0) -> Path | None:
    """Return the newest ``test_metrics.json`` under ``run_dir/lightning_logs``, or ``None``.

    Args:
        run_dir: A seed's ``--trainer.default_root_dir``.
        newer_than: Ignore files last modified before this POSIX time (older runs).
    """
    candidates = [
        path
        for path in run_dir.glob(f"lightning_logs/version_*/{TEST_METRICS_FILE}")
        if path.stat().st_mtime >= newer_than
    ]
    return max(candidates, key=lambda path: path.stat().st_mtime, default=None)


def read_metrics(path: Path) -> dict[str, float]:
    """Read the scalar test metrics and the checkpoint's epoch and ``val_auc`` from ``test_metrics.json``.

    Raises:
        ValueError: If the file is not valid JSON or has no ``metrics`` mapping.
    """
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"Invalid JSON in '{path}': {err}.") from err
    metrics = content.get("metrics") if isinstance(content, dict) else None
    if not isinstance(metrics, dict):
        raise ValueError(f"Missing 'metrics' mapping in '{path}'.")

    values = {name: float(value) for name, value in metrics.items() if isinstance(value, (int, float))}
    checkpoint_name = Path(content.get("checkpoint") or "").name
    for name, pattern in CHECKPOINT_FIELDS.items():
        match = pattern.search(checkpoint_name)
        if match:
            values[name] = float(match.group(1))
    return values


def run_seed(command: list[str], seed: int, run_dir: Path, timeout_s: float | None) -> SeedRun:
    """Run one seed's command, with its output in ``run_dir/output.log``, and read its metrics.

    A non-zero exit status, a timeout or a missing or invalid ``test_metrics.json`` is recorded
    in ``SeedRun.error`` instead of raised.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    record = SeedRun(seed=seed, command=command)
    record.started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record.load_start = [round(value, 2) for value in os.getloadavg()]
    start_wall, start_time, start_cpu = time.perf_counter(), time.time(), _children_cpu_s()

    with open(run_dir / "output.log", "w", encoding="utf-8") as output:
        try:
            completed = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
            record.returncode = completed.returncode
        except subprocess.TimeoutExpired:
            record.error = f"timed out after {timeout_s:.0f} s"

    record.wall_s = round(time.perf_counter() - start_wall, 1)
    record.cpu_s = round(_children_cpu_s() - start_cpu, 1)
    record.load_end = [round(value, 2) for value in os.getloadavg()]
    if record.error is None and record.returncode != 0:
        tail = (run_dir / "output.log").read_text(encoding="utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
        record.error = f"exit status {record.returncode}. End of output.log:\n{tail}"
    if record.error is None:
        _attach_metrics(record, run_dir, newer_than=start_time)
    return record


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _attach_metrics(record: SeedRun, run_dir: Path, newer_than: float) -> None:
    metrics_path = find_test_metrics(run_dir, newer_than)
    if metrics_path is None:
        record.error = f"no {TEST_METRICS_FILE} written under '{run_dir / 'lightning_logs'}' (was test_after_fit off?)"
        return
    record.log_dir = str(metrics_path.parent)
    try:
        record.metrics = read_metrics(metrics_path)
    except ValueError as err:
        record.error = str(err)


def load_previous(run_dir: Path) -> SeedRun | None:
    """Return a seed's earlier finished run from ``run_dir/run.json``, or ``None`` if there is none."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        return None
    try:
        record = SeedRun(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError):
        log.warning("Ignoring unreadable %s, so the seed runs again.", path)
        return None
    return record if record.ok else None


def summarize(runs: list[SeedRun]) -> dict[str, dict[str, Any]]:
    """Aggregate the successful runs per metric.

    Args:
        runs: One record per seed; failed ones are skipped.

    Returns:
        ``{metric: {"mean", "std", "n", "values"}}`` over the metrics of the successful runs,
        plus ``wall_s`` and ``cpu_s``. ``std`` is the sample standard deviation (``ddof=1``), ``None`` for a
        single run. ``values`` lists one value per successful seed, in seed order.
    """
    successful = [run for run in runs if run.ok]
    names = {name for run in successful for name in run.metrics}
    ordered = [name for name in METRIC_ORDER if name in names]
    ordered += sorted(names - set(ordered))

    summary: dict[str, dict[str, Any]] = {}
    for name in ordered:
        values = [run.metrics[name] for run in successful if name in run.metrics]
        summary[name] = _stats(values)
    for name in TIMING_FIELDS:
        times = [getattr(run, name) for run in successful if getattr(run, name) is not None]
        if times:
            summary[name] = _stats(times)
    return summary


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
        "values": values,
    }


def environment() -> dict[str, Any]:
    """Return the interpreter, library versions, CPU count and thread settings of this machine."""
    import lightning
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    }


def format_markdown(config: Path, runs: list[SeedRun], summary: dict[str, dict[str, Any]], env: dict[str, Any]) -> str:
    """Render the summary, per-seed results, commands and environment as Markdown."""
    seeds = [run.seed for run in runs]
    lines = [f"# {config.name}: {len(runs)} seeds ({', '.join(map(str, seeds))})", ""]
    header = "| metric | mean +- std | " + " | ".join(f"seed {seed}" for seed in seeds) + " |"
    lines += [header, "|" + "---|" * (2 + len(seeds))]
    for name, stats in summary.items():
        if name in TIMING_FIELDS:
            by_seed = {run.seed: getattr(run, name) for run in runs if run.ok}
        else:
            by_seed = {run.seed: run.metrics.get(name) for run in runs if run.ok}
        digits = 0 if name in (*TIMING_FIELDS, "best_epoch") else 4
        cells = [_number(by_seed.get(seed), digits) for seed in seeds]
        mean_std = f"{_number(stats['mean'], digits)} +- {_number(stats['std'], digits)}"
        lines.append(f"| {name} | {mean_std} | " + " | ".join(cells) + " |")

    lines += ["", "std is the sample standard deviation over the successful seeds.", "", "## Runs", ""]
    for run in runs:
        status = "ok" if run.ok else f"FAILED: {(run.error or '').splitlines()[0]}"
        timing = f"wall {_number(run.wall_s, 0)} s, CPU {_number(run.cpu_s, 0)} s"
        start, end = _format_load_average(run.load_start), _format_load_average(run.load_end)
        load = f"1/5/15-minute load average {start} at start, {end} at end"
        lines.append(f"- seed {run.seed}: {status}. {timing}. {load}.")
        lines.append(f"  `{shlex.join(run.command)}`")
    lines += ["", "## Environment", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def _format_load_average(values: list[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values) or "n/a"


def _number(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def run_multiseed(
    config: Path,
    seeds: list[int],
    out: Path,
    data_root: str | None = None,
    extra: list[str] | None = None,
    rerun: bool = False,
    timeout_s: float | None = None,
) -> list[SeedRun]:
    """Run ``config`` once per seed, then write ``summary.json`` and ``summary.md`` into ``out``.

    Args:
        config: Recipe YAML passed to ``medxai fit --config``.
        seeds: Distinct seeds, each >= 0.
        out: Output folder. Seed ``S`` runs in ``out/seed_S``.
        data_root: Folder with the npz files (``--data.root``), or ``None`` for the recipe's.
        extra: CLI arguments appended to every command.
        rerun: Run seeds again even if ``run.json`` records a finished run.
        timeout_s: Stop a seed's process after this many seconds and record it as failed.

    Returns:
        One record per seed, in the order of ``seeds``.

    Raises:
        ValueError: If ``config`` is missing, ``seeds`` is empty, repeats a seed or has a
            negative one, or ``timeout_s`` is not positive.
    """
    _check_arguments(config, seeds, timeout_s)
    extra = list(extra or [])
    runs: list[SeedRun] = []
    for index, seed in enumerate(seeds, start=1):
        run_dir = out / f"seed_{seed}"
        previous = None if rerun else load_previous(run_dir)
        if previous is not None:
            log.info("Seed %d (%d/%d): reusing the finished run in %s", seed, index, len(seeds), run_dir)
            runs.append(previous)
            continue
        command = build_command(config, seed, run_dir, data_root, extra)
        log.info("Seed %d (%d/%d): %s", seed, index, len(seeds), shlex.join(command))
        record = run_seed(command, seed, run_dir, timeout_s)
        write_json(run_dir / RUN_FILE, asdict(record))
        if record.ok:
            log.info("Seed %d done in %.0f s: %s", seed, record.wall_s or 0.0, _short_metrics(record.metrics))
        else:
            log.error("Seed %d failed: %s", seed, record.error)
        runs.append(record)

    summary = summarize(runs)
    env = environment()
    write_json(out / "summary.json", {"config": str(config), "seeds": seeds, "summary": summary,
                                      "runs": [asdict(run) for run in runs], "environment": env})
    write_text(out / "summary.md", format_markdown(config, runs, summary, env))
    return runs


def _check_arguments(config: Path, seeds: list[int], timeout_s: float | None) -> None:
    if not config.is_file():
        raise ValueError(f"Config file not found: '{config}'. Pass a recipe such as configs/breastmnist.yaml.")
    if not seeds:
        raise ValueError("No seeds given. Pass at least one seed, e.g. --seeds 0 1 2.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"Invalid seeds {seeds}: each seed may appear only once.")
    if any(seed < 0 for seed in seeds):
        raise ValueError(f"Invalid seeds {seeds}: expected integers >= 0.")
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError(f"Invalid timeout {timeout_s}: expected a positive number of seconds.")


def _short_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {metrics[name]:.4f}" for name in METRIC_ORDER if name in metrics)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split ``argv`` at ``--``: options of this script before, medxai CLI arguments after."""
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description="Run a medxai recipe for several seeds and write a mean +- std table of its test metrics.",
        epilog="Arguments after '--' go to every 'medxai fit' command, e.g. -- --trainer.max_epochs 5",
    )
    parser.add_argument("--config", type=Path, required=True, help="Recipe YAML, e.g. configs/breastmnist.yaml.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Seeds to run (default: 0 1 2).")
    parser.add_argument(
        "--out", type=Path, default=None, help="Output folder (default: lightning_logs/multiseed/<config name>)."
    )
    parser.add_argument("--data-root", default=None, help="Folder with the MedMNIST npz files (--data.root).")
    parser.add_argument("--rerun", action="store_true", help="Run seeds again even if a finished run is recorded.")
    parser.add_argument("--timeout", type=float, default=None, help="Seconds after which a seed's run is stopped.")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path("lightning_logs") / "multiseed" / args.config.stem
    return args, extra


def main(argv: list[str] | None = None) -> int:
    """Run the script; return 0 if every seed succeeded, 1 if any failed, 2 for invalid arguments."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        runs = run_multiseed(args.config, args.seeds, args.out, args.data_root, extra, args.rerun, args.timeout)
    except ValueError as err:
        sys.stderr.write(f"multiseed: error: {err}\n")
        return 2
    sys.stdout.write((args.out / "summary.md").read_text(encoding="utf-8"))
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
