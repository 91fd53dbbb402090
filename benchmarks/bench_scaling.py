"""Wall and CPU time of fit per epoch, explanation and Quantus evaluation against N and image size.

All parts use medxai's synthetic known-signal dataset (``--data.dataset synthetic``), which
exists at every size and has ground-truth masks, so the mask-based Quantus metrics run too.
The model is the ResNet-18 that ``medxai fit`` builds for the size: the small stem at 28 and
64 px, the ImageNet stem at 128 and 224 px. That is why 64 px costs more than 128 px.

Parts:
    fit       ``medxai fit`` (CLI, logger and checkpoints on, progress bar off) for 2 epochs on N
              training and 64 validation images; the second epoch (training and validation)
              is reported, because the first one includes one-off kernel selection.
    explain   ``medxai.explain.explain`` on N images per method, with the explanation
              callback's defaults for the batch size and IG's steps and scaled inputs per pass.
    quantus   ``medxai.evaluation.run_suite`` with every registry metric on N images, for the
              methods in ``--quantus-methods`` (IG with the Quantus callback's 16 steps).

Untrained weights are used for explanation and Quantus: their cost does not depend on what
the model learned. Timings on a shared machine are noisy, so each row also gives CPU time.

Example:
    python benchmarks/bench_scaling.py --threads 1 --parts fit explain --sizes 28 64 128 224
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from bench_common import explanation_callback_defaults, load_average, machine_info, markdown_table, write_report
from medxai.cli import build_cli
from medxai.data.synthetic import make_known_signal
from medxai.explain import explain
from medxai.models import build_resnet18

PARTS = ("fit", "explain", "quantus")
QUANTUS_EXPLAIN_OPTIONS: dict[str, dict[str, Any]] = {"ig": {"n_steps": 16, "internal_batch_size": 256}}


class EpochClock(pl.Callback):
    """Record wall and CPU time from the start of each training epoch to the end of its validation."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, float]] = []
        self.epochs: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.starts.append((time.perf_counter(), time.process_time()))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.starts:
            return
        wall, cpu = self.starts[-1]
        self.epochs.append((time.perf_counter() - wall, time.process_time() - cpu))


def timed(function: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def fit_epoch(size: int, count: int, batch_size: int, work_dir: Path) -> dict[str, Any]:
    args = [
        "--data.dataset=synthetic",
        f"--data.size={size}",
        f"--data.synthetic_samples=[{count}, 64, 64]",
        f"--data.batch_size={batch_size}",
        "--trainer.max_epochs=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={work_dir}",
    ]
    sys.argv = sys.argv[:1]  # LightningCLI warns when it gets both `args` and command-line arguments.
    cli = build_cli(args, run=False)
    clock = EpochClock()
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    wall, cpu = clock.epochs[-1]
    return {"part": "fit", "method": "-", "size": size, "n": count, "wall_s": wall, "cpu_s": cpu}


def known_signal_test(size: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return standardised float images, labels and masks of ``count`` synthetic test images."""
    arrays = make_known_signal(1, 1, count, size=size, seed=0)
    images = torch.from_numpy(arrays["test_images"]).float().div(255).unsqueeze(1)
    images = (images - images.mean()) / images.std()
    labels = torch.from_numpy(arrays["test_labels"].reshape(-1).astype("int64"))
    masks = torch.from_numpy(arrays["test_masks"]).bool().unsqueeze(1)
    return images, labels, masks


def explain_rows(size: int, count: int, methods: list[str], device: str) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    model = build_resnet18(1, 2, image_size=size).eval().to(device)
    x, y, _ = known_signal_test(size, count)
    x, y = x.to(device), y.to(device)
    defaults = explanation_callback_defaults()
    rows = []
    for method in methods:
        options = defaults["ig"] if method == "ig" else {}

        def run(inputs: torch.Tensor, targets: torch.Tensor) -> None:
            # .cpu() waits for the maps, so a GPU's queued work is inside the timing.
            explain(model, inputs, targets, method=method, batch_size=defaults["batch_size"], **options).cpu()

        run(x[:2], y[:2])  # warm-up
        _, wall, cpu = timed(lambda: run(x, y))
        rows.append({"part": "explain", "method": method, "size": size, "n": count, "wall_s": wall, "cpu_s": cpu})
    return rows


def quantus_rows(size: int, count: int, methods: list[str]) -> list[dict[str, Any]]:
    from medxai.evaluation import QuantusExplainFunc, run_suite

    torch.manual_seed(0)
    model = build_resnet18(1, 2, image_size=size).eval()
    x, y, masks = known_signal_test(size, count)
    funcs = {method: QuantusExplainFunc(method, options=QUANTUS_EXPLAIN_OPTIONS.get(method)) for method in methods}
    result, wall, cpu = timed(lambda: run_suite(model, x, y, funcs, num_classes=2, masks=masks, progress=False))
    failures = sorted({f"{failure.metric}/{failure.method}" for failure in result.failures})
    return [{
        "part": "quantus", "method": "+".join(methods), "size": size, "n": count, "wall_s": wall, "cpu_s": cpu,
        "skipped": ",".join(sorted(result.skipped)), "failures": ",".join(failures),
    }]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64, 128, 224])
    parser.add_argument("--fit-n", type=int, nargs="+", default=[128, 256, 512], help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size (BreastMNIST config: 32)")
    parser.add_argument("--explain-n", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--explain-methods", nargs="+", default=["gradcam", "gradcampp", "saliency", "ig"])
    parser.add_argument("--quantus-n", type=int, nargs="+", default=[8])
    parser.add_argument("--quantus-sizes", type=int, nargs="+", default=None, help="default: --sizes")
    parser.add_argument("--quantus-methods", nargs="+", default=["gradcam"])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="device of the explain part: cpu or cuda")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    rows: list[dict[str, Any]] = []

    def add(new_rows: list[dict[str, Any]]) -> None:
        for row in new_rows:
            row["load"] = load_average()
            rows.append(row)
            print(f"{row['part']:8s} {row['method']:10s} {row['size']:4d} px  N={row['n']:5d}  "
                  f"{row['wall_s']:8.1f} s wall  {row['cpu_s']:8.1f} s CPU  (load {row['load']:.1f})", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as work_dir:
        for size in args.sizes:
            if "fit" in args.parts:
                for count in args.fit_n:
                    add([fit_epoch(size, count, args.batch_size, Path(work_dir) / f"fit{size}_{count}")])
            if "explain" in args.parts:
                for count in args.explain_n:
                    add(explain_rows(size, count, args.explain_methods, args.device))
        if "quantus" in args.parts:
            for size in args.quantus_sizes or args.sizes:
                for count in args.quantus_n:
                    add(quantus_rows(size, count, args.quantus_methods))

    for row in rows:
        row["cpu_ms_per_image"] = 1e3 * row["cpu_s"] / row["n"]
    print(markdown_table(rows, ["part", "method", "size", "n", "wall_s", "cpu_s", "cpu_ms_per_image", "load"]))
    write_report(args.json, {
        "benchmark": "scaling",
        "machine": machine_info(),
        "settings": {key: str(value) for key, value in vars(args).items()},
        "explanation_defaults": explanation_callback_defaults(),
        "results": rows,
    })


if __name__ == "__main__":
    main()
