"""Split one ResNet-18 training step into operator groups, in float32 and in bf16 autocast.

``torch.profiler`` records a few steps of the model alone (random inputs already in memory,
channels_last, AdamW with the recipes' settings). AdamW runs fused, so that its update is one
operator in the profile. Self CPU time is grouped into
convolution forward, convolution backward, copies (dtype casts of the weights and reorders of
their memory layout), the optimizer and the rest (batch norm, ReLU, pooling, loss). The table
shows which part of a step bf16 speeds up and which part it leaves as it is, which bounds the
speed-up of the whole step.

Example:
    OMP_NUM_THREADS=2 python benchmarks/bench_step_profile.py --threads 2 --size 28 --batch-size 32
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from bench_common import load_average, machine_info, markdown_table, write_report
from medxai.models import build_resnet18

# Operator name -> group. Operators not listed here count as "other".
OPERATOR_GROUPS: dict[str, str] = {
    "aten::mkldnn_convolution": "conv forward",
    "aten::convolution_backward": "conv backward",
    "aten::copy_": "copies",
    "aten::_fused_adamw_": "optimizer",
}

GROUPS: tuple[str, ...] = ("conv forward", "conv backward", "copies", "optimizer", "other")


def profile_step(bf16: bool, args: argparse.Namespace) -> dict[str, float]:
    """Return the mean self CPU time per step of each operator group, in milliseconds.

    Args:
        bf16: Run the forward pass under ``torch.autocast("cpu", dtype=torch.bfloat16)``.
        args: Parsed options (``size``, ``channels``, ``batch_size``, ``warmup``, ``steps``).

    Returns:
        ``{group: ms per step}`` for every name in :data:`GROUPS`, plus ``"step"``, their sum.
    """
    torch.manual_seed(0)
    model = build_resnet18(args.channels, 2, image_size=args.size).train().to(memory_format=torch.channels_last)
    inputs = torch.randn(args.batch_size, args.channels, args.size, args.size)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 2, (args.batch_size,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            step()

    totals: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        group = OPERATOR_GROUPS.get(event.key, "other")
        totals[group] += event.self_cpu_time_total / 1000.0 / args.steps  # microseconds -> ms per step
    result = {group: totals[group] for group in GROUPS}
    result["step"] = sum(result.values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=28, help="image side in pixels")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = load_average()
    fp32, bf16 = profile_step(False, args), profile_step(True, args)
    rows = [
        {"part": part, "fp32_ms": fp32[part], "bf16_ms": bf16[part], "speed_up": fp32[part] / bf16[part]}
        for part in (*GROUPS, "step")
    ]
    print(markdown_table(rows, ["part", "fp32_ms", "bf16_ms", "speed_up"]))
    write_report(args.json, {
        "benchmark": "step_profile",
        "machine": machine_info(),
        "settings": {key: str(value) for key, value in vars(args).items()},
        "load_before": load_before,
        "load_after": load_average(),
        "rows": rows,
    })


if __name__ == "__main__":
    main()
