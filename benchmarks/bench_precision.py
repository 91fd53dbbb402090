"""Validation AUC and fit time of `medxai fit` in bf16-mixed against 32-true, over seeds.

For each seed, a short ``medxai fit`` runs once per precision on the real dataset, in turns
(seed 0: 32-true, bf16-mixed; seed 1: bf16-mixed, 32-true; ...), with the dataset's YAML config
and only ``seed_everything``, ``trainer.max_epochs`` and ``trainer.precision`` changed.
Each run reports the best and the last validation AUC and the fit's wall and CPU time
(training and validation, without the test after fit).

The steady-state training speed of the two precisions is measured by
``bench_train.py --paths fit --precision 32-true bf16-mixed``.

Example:
    python benchmarks/bench_precision.py --data-root DATA --threads 1 --seeds 0 1 2 3 4 --epochs 10

With ``--image-size 224`` the 28 px files are resized on the fly (``--data.resize 224``), and the
model gets the ImageNet stem, as in ``bench_train.py``.

``DATA`` is a folder with the official ``<dataset>.npz``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from bench_common import REPO_ROOT, load_average, machine_info, markdown_table, write_report
from medxai.cli import build_cli

PRECISIONS = ("32-true", "bf16-mixed")


def run_fit(args: argparse.Namespace, seed: int, precision: str, work_dir: Path) -> dict[str, Any]:
    cli_args = [
        f"--config={args.config}",
        f"--data.root={args.data_root}",
        f"--seed_everything={seed}",
        f"--trainer.max_epochs={args.epochs}",
        f"--trainer.precision={precision}",
        f"--trainer.default_root_dir={work_dir / f'{precision}-seed{seed}'}",
        "--trainer.enable_progress_bar=false",
    ]
    if args.image_size != 28:
        cli_args.append(f"--data.resize={args.image_size}")
    sys.argv = sys.argv[:1]  # LightningCLI warns when it gets both `args` and command-line arguments.
    cli = build_cli(cli_args, run=False)
    wall, cpu = time.perf_counter(), time.process_time()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    checkpoint = cli.trainer.checkpoint_callback
    best = checkpoint.best_model_score if checkpoint is not None else None
    return {
        "seed": seed,
        "precision": precision,
        "best_val_auc": float(best) if best is not None else float("nan"),
        "last_val_auc": float(cli.trainer.callback_metrics["val/auc"]),
        "fit_wall_s": wall,
        "fit_cpu_s": cpu,
        "load_after": load_average(),
    }


def compare(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Return mean and standard deviation of ``key`` per precision and the paired difference."""
    by_precision = {p: [row[key] for row in sorted(rows, key=lambda r: r["seed"]) if row["precision"] == p] for p in PRECISIONS}
    differences = [bf16 - fp32 for fp32, bf16 in zip(by_precision["32-true"], by_precision["bf16-mixed"])]
    summary: dict[str, Any] = {"metric": key}
    for precision, values in by_precision.items():
        summary[f"{precision}_mean"] = statistics.fmean(values)
        summary[f"{precision}_sd"] = statistics.stdev(values) if len(values) > 1 else float("nan")
    summary["bf16_minus_fp32_mean"] = statistics.fmean(differences)
    summary["bf16_minus_fp32_sd"] = statistics.stdev(differences) if len(differences) > 1 else float("nan")
    # Two-sided Wilcoxon signed-rank test on the paired differences (exact for small n).
    summary["wilcoxon_p"] = float(stats.wilcoxon(differences).pvalue) if len(differences) > 1 and any(differences) else 1.0
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "breastmnist.yaml")
    parser.add_argument("--data-root", required=True, help="folder with the official <dataset>.npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=10, help="trainer.max_epochs of each short run")
    parser.add_argument("--image-size", type=int, default=28, help="side the model sees; 28 px files are resized")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as work_dir:
        for position, seed in enumerate(args.seeds):
            order = PRECISIONS if position % 2 == 0 else PRECISIONS[::-1]
            for precision in order:
                row = run_fit(args, seed, precision, Path(work_dir))
                rows.append(row)
                print(f"seed {seed} {precision:10s} best val AUC {row['best_val_auc']:.4f}  last {row['last_val_auc']:.4f}  "
                      f"fit {row['fit_wall_s']:.0f} s wall, {row['fit_cpu_s']:.0f} s CPU", flush=True)

    summaries = [compare(rows, key) for key in ("best_val_auc", "last_val_auc", "fit_wall_s", "fit_cpu_s")]
    speed = {
        clock: statistics.median(
            fp32[key] / bf16[key]
            for fp32 in rows if fp32["precision"] == "32-true"
            for bf16 in rows if bf16["precision"] == "bf16-mixed" and bf16["seed"] == fp32["seed"]
        )
        for clock, key in (("wall", "fit_wall_s"), ("cpu", "fit_cpu_s"))
    }
    print(markdown_table(rows, ["seed", "precision", "best_val_auc", "last_val_auc", "fit_wall_s", "fit_cpu_s"]))
    print(markdown_table(summaries, list(summaries[0])))
    print(f"fit time fp32 / bf16 (median over seeds): wall {speed['wall']:.2f}x, CPU {speed['cpu']:.2f}x")
    write_report(args.json, {
        "benchmark": "precision",
        "machine": machine_info(),
        "settings": {key: str(value) for key, value in vars(args).items()},
        "runs": rows,
        "summary": summaries,
        "fp32_over_bf16_fit_time": speed,
    })


if __name__ == "__main__":
    main()
