"""Training throughput of `medxai fit` against a plain PyTorch loop and a per-image PIL pipeline.

Three paths train the same ResNet-18 with the same batch size, precision, memory layout,
optimizer and loss, and each reports steady-state images per second:

``fit``
    The Lightning path as users run it: the CLI parses the dataset's YAML config, builds the
    Trainer (TensorBoard logger, checkpoints, progress bar on), the datamodule and the module,
    and ``Trainer.fit`` runs. Batches are uint8 tensors gathered in memory and converted,
    augmented and standardised on the device.
``plain``
    A hand-written loop over the same uint8 tensors in memory, with the same batch transforms
    and augmentation (``medxai.data.transforms``), AdamW and per-step cosine schedule, and no
    framework, logging or metrics. This is the speed of the model.
``pil``
    The data pipeline of the MedMNIST v2 study: the medmnist dataset class returns one PIL image
    per sample, torchvision transforms it (``Resize`` to the model's size when it differs,
    ``ToTensor``, ``Normalize(0.5, 0.5)``) and a DataLoader (shuffle, no workers) stacks the
    samples. No augmentation, as in that study. The loop is the ``plain`` loop.

A step's time is the wall time from the end of one optimizer step to the end of the next, so it
includes fetching the batch, transforms, logging and the progress bar. The paths run in turns
(round 1: fit, plain, pil; round 2: plain, pil, fit; ...) so that load changes on a shared
machine hit all of them, and each path reports the median step over all rounds. Ratios are the
median over rounds of the per-round ratios.

Examples:
    python benchmarks/bench_train.py --data-root DATA --threads 1
    python benchmarks/bench_train.py --data-root DATA --image-size 224 --warmup 2 --steps 5 --rounds 3
    python benchmarks/bench_train.py --data-root DATA --paths fit --precision 32-true bf16-mixed

``DATA`` is a folder with the official ``<dataset>.npz`` at 28 px.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import medmnist
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from medmnist import INFO
from torch import Tensor, nn
from torchvision import transforms

from bench_common import REPO_ROOT, load_average, machine_info, markdown_table, median, write_report
from medxai.cli import build_cli
from medxai.data.transforms import Augmentation, normalize, to_float
from medxai.models import build_resnet18

PATHS = ("fit", "plain", "pil")
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass(frozen=True)
class Setup:
    """Data, model size, batch size, precision and optimisation settings that every path shares."""

    config: Path
    data_root: str
    dataset: str
    image_size: int
    batch_size: int
    precision: str
    channels_last: bool
    lr: float
    weight_decay: float
    label_smoothing: float
    augmentation: Augmentation
    warmup: int
    steps: int
    device: str
    check_md5: bool

    @property
    def resize(self) -> int | None:
        return None if self.image_size == 28 else self.image_size

    @property
    def total_steps(self) -> int:
        """Steps per run: warm-up, then one step that opens the timed window, then the timed steps."""
        return self.warmup + self.steps + 1


@dataclass
class StepTimes:
    """Wall and CPU time of each timed step, in seconds."""

    wall: list[float]
    cpu: list[float]


def stamp(sync: bool = False) -> tuple[float, float]:
    """Return the wall clock and the CPU time of this process (all its threads).

    With ``sync`` on a GPU machine, wait for queued GPU work first. The paths sync only at the
    start and the end of the timed window, so that the window's mean is the GPU's rate while
    per-step intervals on a GPU only show how fast the host queues work.
    """
    if sync and torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def sync_now(step: int, warmup: int, total: int) -> bool:
    """Return whether step ``step`` (1-based) opens or closes the timed window."""
    return step in (warmup + 1, total)


def step_times(stamps: list[tuple[float, float]], warmup: int) -> StepTimes:
    """Return the intervals between consecutive step ends, without the first ``warmup`` steps."""
    pairs = list(itertools.pairwise(stamps[warmup:]))
    return StepTimes([later[0] - earlier[0] for earlier, later in pairs], [later[1] - earlier[1] for earlier, later in pairs])


class StepClock(pl.Callback):
    """Record the wall clock and CPU time at the end of every training batch."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup = warmup
        self.total = total
        self.stamps: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = len(self.stamps) + 1
        self.stamps.append(stamp(sync_now(step, self.warmup, self.total)))


# The Lightning path.


def run_fit(setup: Setup, work_dir: Path) -> StepTimes:
    args = [
        f"--config={setup.config}",
        f"--data.root={setup.data_root}",
        f"--data.batch_size={setup.batch_size}",
        f"--trainer.precision={setup.precision}",
        f"--trainer.max_steps={setup.total_steps}",
        f"--trainer.accelerator={'gpu' if setup.device.startswith('cuda') else 'cpu'}",
        f"--data.check_md5={str(setup.check_md5).lower()}",
        f"--trainer.default_root_dir={work_dir}",
        f"--model.channels_last={str(setup.channels_last).lower()}",
    ]
    if setup.resize:
        args.append(f"--data.resize={setup.resize}")
    if not setup.augmentation.enabled:
        args.append("--data.augmentation=null")
    sys.argv = sys.argv[:1]  # LightningCLI warns when it gets both `args` and command-line arguments.
    cli = build_cli(args, run=False)
    clock = StepClock(setup.warmup, setup.total_steps)
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return step_times(clock.stamps, setup.warmup)


# The plain loop and its two batch sources.


def in_memory_batches(setup: Setup) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield standardised, augmented float batches from uint8 tensors, as a careful loop would."""
    with np.load(Path(setup.data_root) / f"{setup.dataset}.npz") as arrays:
        images = torch.from_numpy(arrays["train_images"])
        labels = torch.from_numpy(arrays["train_labels"].astype(np.int64).reshape(-1))
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
    train = images.float() / 255
    mean, std = train.mean(dim=(0, 2, 3)), train.std(dim=(0, 2, 3))
    while True:
        order = torch.randperm(len(labels))
        for start in range(0, len(order) - setup.batch_size + 1, setup.batch_size):
            index = order[start : start + setup.batch_size]
            # As in fit: the uint8 batch goes to the device, where it is converted.
            batch = images[index].to(setup.device, non_blocking=True)
            x = setup.augmentation(to_float(batch, setup.image_size))
            yield normalize(x, mean, std), labels[index].to(setup.device, non_blocking=True)


def pil_batches(setup: Setup) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield batches from medmnist's PIL dataset through per-image torchvision transforms."""
    steps: list[Any] = []
    if setup.image_size != 28:
        steps.append(transforms.Resize((setup.image_size, setup.image_size)))
    steps += [transforms.ToTensor(), transforms.Normalize(mean=[0.5], std=[0.5])]
    dataset_class = getattr(medmnist, INFO[setup.dataset]["python_class"])
    dataset = dataset_class(split="train", transform=transforms.Compose(steps), root=setup.data_root, size=28)
    loader = torch.utils.data.DataLoader(dataset, batch_size=setup.batch_size, shuffle=True, drop_last=True)
    while True:
        for x, y in loader:
            yield x.to(setup.device, non_blocking=True), y.reshape(-1).long().to(setup.device, non_blocking=True)


def run_plain(setup: Setup, batches: Callable[[Setup], Iterator[tuple[Tensor, Tensor]]]) -> StepTimes:
    info = INFO[setup.dataset]
    torch.manual_seed(0)
    model = build_resnet18(int(info["n_channels"]), len(info["label"]), setup.image_size).train().to(setup.device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=setup.lr, weight_decay=setup.weight_decay)
    total = setup.total_steps
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    criterion = nn.CrossEntropyLoss(label_smoothing=setup.label_smoothing)
    bf16 = setup.precision == "bf16-mixed"

    device_type = torch.device(setup.device).type
    stamps = []
    for step, (x, y) in zip(range(1, total + 1), batches(setup)):
        if setup.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        stamps.append(stamp(sync_now(step, setup.warmup, total)))
    return step_times(stamps, setup.warmup)


def run_path(path: str, setup: Setup, work_dir: Path) -> StepTimes:
    if path == "fit":
        return run_fit(setup, work_dir)
    return run_plain(setup, in_memory_batches if path == "plain" else pil_batches)


# Orchestration.


def load_setup(args: argparse.Namespace, precision: str) -> Setup:
    config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    data, model = config.get("data", {}), config.get("model", {})
    optimizer_args = model.get("optimizer", {}).get("init_args", {})
    return Setup(
        config=args.config,
        data_root=args.data_root,
        dataset=data.get("dataset", "breastmnist"),
        image_size=args.image_size,
        batch_size=args.batch_size or data.get("batch_size", 128),
        precision=precision,
        channels_last=args.channels_last == "true",
        lr=float(optimizer_args.get("lr", 1e-3)),
        weight_decay=float(optimizer_args.get("weight_decay", 0.01)),
        label_smoothing=float(model.get("label_smoothing", 0.0)),
        augmentation=Augmentation(**data.get("augmentation", {})) if args.augmentation == "config" else Augmentation(),
        warmup=args.warmup,
        steps=args.steps,
        device=args.device,
        check_md5=args.check_md5 == "true",
    )


def summarise(runs: list[dict[str, Any]], batch_size: int, rounds: int, window: bool) -> list[dict[str, Any]]:
    """Return one row per path: images/s by wall clock and by CPU time, and ratios.

    ``images_per_s`` comes from the median step, or from the whole timed window when ``window``
    is set (on a GPU, where single steps are not synchronised). ``<first>_over_this`` is the
    images/s of the first path divided by this path's, taken per round (the runs of one round
    ran minutes apart at most) and then the median over rounds.
    """
    typical = (lambda values: sum(values) / len(values)) if window else median
    names = list(dict.fromkeys(run["name"] for run in runs))
    rows = []
    for name in names:
        mine = [run for run in runs if run["name"] == name]
        wall = [value for run in mine for value in run["times"].wall]
        cpu = [value for run in mine for value in run["times"].cpu]
        rows.append({
            "path": name,
            "images_per_s": batch_size / typical(wall),
            "images_per_s_mean": batch_size * len(wall) / sum(wall),
            "images_per_cpu_s": batch_size / typical(cpu),
            "timed_steps": len(wall),
            "per_round": [round(batch_size / typical(run["times"].wall), 2) for run in mine],
        })

    first = names[0]
    for row in rows:
        for clock, column in (("wall", f"{first}_over_this"), ("cpu", f"{first}_over_this_cpu")):
            ratios = []
            for round_index in range(rounds):
                base = [run for run in runs if run["name"] == first and run["round"] == round_index]
                this = [run for run in runs if run["name"] == row["path"] and run["round"] == round_index]
                if base and this:
                    ratios.append(typical(getattr(this[0]["times"], clock)) / typical(getattr(base[0]["times"], clock)))
            row[column] = median(ratios)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "breastmnist.yaml")
    parser.add_argument("--data-root", required=True, help="folder with the official <dataset>.npz at 28 px")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--precision", nargs="+", default=["32-true"], choices=PRECISIONS,
                        help="one or more; with two, every path runs in both, in turns")
    parser.add_argument("--image-size", type=int, default=28, help="side the model sees; 28 px files are resized")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's data.batch_size")
    parser.add_argument("--channels-last", choices=("true", "false"), default="true")
    parser.add_argument("--augmentation", choices=("config", "none"), default="config",
                        help="none: fit and plain skip augmentation, like the pil path")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each run")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=3, help="turns over all paths")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda; fit then runs with trainer.accelerator gpu")
    parser.add_argument("--check-md5", choices=("true", "false"), default="true",
                        help="false for a generated file in the MedMNIST format")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    setups = {precision: load_setup(args, precision) for precision in args.precision}
    variants = [(path, precision) for path in args.paths for precision in args.precision]
    runs: list[dict[str, Any]] = []
    loads = [load_average()]
    with tempfile.TemporaryDirectory(prefix="bench_train_") as work_dir:
        for round_index in range(args.rounds):
            shift = round_index % len(variants)
            for path, precision in variants[shift:] + variants[:shift]:
                name = path if len(args.precision) == 1 else f"{path} {precision}"
                times = run_path(path, setups[precision], Path(work_dir))
                runs.append({"name": name, "round": round_index, "times": times})
                batch_size = setups[precision].batch_size
                print(f"round {round_index + 1}: {name:18s} {batch_size / median(times.wall):7.1f} img/s, "
                      f"{batch_size / median(times.cpu):7.1f} img/CPU-s (load {load_average():.1f})", flush=True)
            loads.append(load_average())

    setup = next(iter(setups.values()))
    rows = summarise(runs, setup.batch_size, args.rounds, window=args.device.startswith("cuda"))
    first = rows[0]["path"]
    columns = ["path", "images_per_s", "images_per_s_mean", "images_per_cpu_s", f"{first}_over_this",
               f"{first}_over_this_cpu", "timed_steps", "per_round"]
    print(markdown_table(rows, columns))
    write_report(args.json, {
        "benchmark": "train",
        "machine": machine_info(),
        "load_average_1min_per_round": loads,
        "settings": {key: str(value) for key, value in vars(args).items()},
        "dataset": setup.dataset,
        "results": rows,
    })


if __name__ == "__main__":
    main()
