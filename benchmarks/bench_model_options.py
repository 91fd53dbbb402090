"""Time one ResNet-18 training step under memory layout, precision and torch.compile options.

This isolates the model from the framework: random float inputs already in memory, AdamW, no
logging. Variants are timed in turns (A, B, C, A, B, C, ...) so that a change in the load of a
shared machine hits all of them alike, and each variant reports the median over all its steps.

Variants (combine with ``--variants``):
    fp32, bf16          float32, or autocast to bfloat16 as ``trainer.precision: bf16-mixed`` does
    +cl                 channels_last memory format for weights and inputs
    +compile            ``torch.compile`` (inductor) of the model; compile time is reported apart
    +fused              fused AdamW (``fused=True``) instead of its default multi-tensor update

Example:
    OMP_NUM_THREADS=1 python benchmarks/bench_model_options.py --threads 1 \
        --variants fp32 fp32+cl bf16 bf16+cl --rounds 3
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench_common import load_average, machine_info, markdown_table, median, time_steps, write_report
from medxai.models import build_resnet18

KNOWN_PARTS = ("fp32", "bf16", "cl", "compile", "fused")


@dataclass
class Variant:
    """One configuration under test, with its model, optimizer and collected step times."""

    name: str
    bf16: bool
    channels_last: bool
    compile: bool
    fused: bool
    model: nn.Module
    optimizer: torch.optim.Optimizer
    inputs: Tensor
    labels: Tensor
    step_seconds: list[float] = field(default_factory=list)
    step_cpu_seconds: list[float] = field(default_factory=list)
    first_step_seconds: float = float("nan")

    def step(self) -> None:
        with torch.autocast(self.inputs.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = F.cross_entropy(self.model(self.inputs), self.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.inputs.is_cuda:
            torch.cuda.synchronize()  # so that a step's wall time is the GPU's time


def parse_variant(name: str) -> tuple[bool, bool, bool, bool]:
    parts = name.split("+")
    unknown = [part for part in parts if part not in KNOWN_PARTS]
    if unknown or parts[0] not in ("fp32", "bf16"):
        raise SystemExit(f"Invalid variant '{name}'. Expected fp32 or bf16, optionally with +cl, +compile and +fused.")
    return parts[0] == "bf16", "cl" in parts, "compile" in parts, "fused" in parts


def build_variant(name: str, args: argparse.Namespace) -> Variant:
    bf16, channels_last, compiled, fused = parse_variant(name)
    torch.manual_seed(0)
    model = build_resnet18(args.channels, args.classes, image_size=args.size).train().to(args.device)
    inputs = torch.randn(args.batch_size, args.channels, args.size, args.size, device=args.device)
    labels = torch.randint(0, args.classes, (args.batch_size,), device=args.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    # fused=None keeps AdamW's default (the multi-tensor update), as in the recipes.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True if fused else None)
    runnable: nn.Module = torch.compile(model) if compiled else model  # type: ignore[assignment]
    return Variant(name, bf16, channels_last, compiled, fused, runnable, optimizer, inputs, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=["fp32", "fp32+cl", "bf16", "bf16+cl"])
    parser.add_argument("--size", type=int, default=28, help="image side in pixels (small stem below 128)")
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant and round")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="turns over all variants")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    variants = [build_variant(name, args) for name in args.variants]
    for variant in variants:
        # The first step includes oneDNN kernel selection and, for +compile, the compilation.
        started = time.perf_counter()
        variant.step()
        variant.first_step_seconds = time.perf_counter() - started

    loads = [load_average()]
    for round_index in range(args.rounds):
        for variant in variants:
            wall, cpu = time_steps(variant.step, args.warmup, args.steps)
            variant.step_seconds += wall
            variant.step_cpu_seconds += cpu
            print(f"round {round_index + 1}: {variant.name:16s} {args.batch_size / median(wall):7.1f} img/s, "
                  f"{args.batch_size / median(cpu):7.1f} img/CPU-s", flush=True)
        loads.append(load_average())

    baseline = median(variants[0].step_seconds)
    baseline_cpu = median(variants[0].step_cpu_seconds)
    rows = []
    for variant in variants:
        rows.append({
            "variant": variant.name,
            "images_per_s": args.batch_size / median(variant.step_seconds),
            "images_per_cpu_s": args.batch_size / median(variant.step_cpu_seconds),
            "ratio_to_first": baseline / median(variant.step_seconds),
            "ratio_to_first_cpu": baseline_cpu / median(variant.step_cpu_seconds),
            "first_step_s": variant.first_step_seconds,
            "timed_steps": len(variant.step_seconds),
        })
    columns = ["variant", "images_per_s", "images_per_cpu_s", "ratio_to_first", "ratio_to_first_cpu", "first_step_s", "timed_steps"]
    print(markdown_table(rows, columns))
    write_report(args.json, {
        "benchmark": "model_options",
        "machine": machine_info(),
        "load_average_1min_per_round": loads,
        "settings": vars(args),
        "results": rows,
    })


if __name__ == "__main__":
    main()
