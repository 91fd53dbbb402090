"""Split one ResNet-18 training step into operator groups, in float32 and in bf16 autocast.

``torch.profiler`` records steps of the model alone (random inputs already in memory,
channels_last, AdamW with the recipes' settings). AdamW runs fused, so that its update is one
operator in the profile. Self CPU time is grouped into convolution forward, convolution
backward, copies (dtype casts of the weights and reorders of their memory layout), the
optimizer and the rest (batch norm, ReLU, pooling, loss). The table shows which part of a step
bf16 speeds up and which part it leaves as it is, which bounds the speed-up of the whole step.

The two precisions are profiled in turns (fp32, bf16, fp32, ...), and each figure is the median
over the rounds, so that a change in the load of a shared machine hits both alike. With
``--by-shape`` the convolution backward time is also split by input shape, that is by kind of
layer, which shows how the bf16 gain depends on the size of the feature map.

Example:
    OMP_NUM_THREADS=2 python benchmarks/bench_step_profile.py --threads 2 --size 28 --batch-size 32
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from collections.abc import Callable

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


def build_step(bf16: bool, args: argparse.Namespace) -> Callable[[], None]:
    """Return a function that runs one training step of a fresh model.

    Args:
        bf16: Run the forward pass under ``torch.autocast("cpu", dtype=torch.bfloat16)``.
        args: Parsed options (``size``, ``channels``, ``batch_size``).
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

    return step


def profile_steps(step: Callable[[], None], steps: int) -> tuple[dict[str, float], dict[str, float]]:
    """Profile ``steps`` calls of ``step`` and return mean self CPU milliseconds per step.

    Returns:
        ``{group: ms}`` for every name in :data:`GROUPS` plus ``"step"``, their sum, and
        ``{input shapes: ms}`` of the convolution backward pass.
    """
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        for _ in range(steps):
            step()

    totals: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        group = OPERATOR_GROUPS.get(event.key, "other")
        totals[group] += event.self_cpu_time_total / 1000.0 / steps  # microseconds -> ms per step
    groups = {group: totals[group] for group in GROUPS}
    groups["step"] = sum(groups.values())

    backward_by_shape = {
        # The first two inputs are the output gradient and the layer input, (N, C, H, W) each.
        str(event.input_shapes[:2]): event.self_cpu_time_total / 1000.0 / steps
        for event in profiler.key_averages(group_by_input_shape=True)
        if event.key == "aten::convolution_backward"
    }
    return groups, backward_by_shape


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Return the median over rounds of each key present in every round."""
    keys = set.intersection(*(set(values) for values in rounds))
    return {key: statistics.median(values[key] for values in rounds) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=28, help="image side in pixels")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per precision before the first round")
    parser.add_argument("--steps", type=int, default=4, help="profiled steps per precision and round")
    parser.add_argument("--rounds", type=int, default=5, help="turns over both precisions")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--by-shape", action="store_true", help="also print convolution backward time per input shape")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    steps = {"fp32": build_step(False, args), "bf16": build_step(True, args)}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    group_rounds: dict[str, list[dict[str, float]]] = {name: [] for name in steps}
    shape_rounds: dict[str, list[dict[str, float]]] = {name: [] for name in steps}
    loads = [load_average()]
    for round_index in range(args.rounds):
        for name, step in steps.items():
            groups, shapes = profile_steps(step, args.steps)
            group_rounds[name].append(groups)
            shape_rounds[name].append(shapes)
            print(f"round {round_index + 1}: {name} step {groups['step']:.1f} ms", flush=True)
        loads.append(load_average())

    fp32, bf16 = medians(group_rounds["fp32"]), medians(group_rounds["bf16"])
    rows = [
        {"part": part, "fp32_ms": fp32[part], "bf16_ms": bf16[part], "speed_up": fp32[part] / bf16[part]}
        for part in (*GROUPS, "step")
    ]
    print(markdown_table(rows, ["part", "fp32_ms", "bf16_ms", "speed_up"]))

    fp32_shapes, bf16_shapes = medians(shape_rounds["fp32"]), medians(shape_rounds["bf16"])
    shape_rows = [
        {"input_shapes": shape, "fp32_ms": ms, "bf16_ms": bf16_shapes[shape], "speed_up": ms / bf16_shapes[shape]}
        for shape, ms in sorted(fp32_shapes.items(), key=lambda item: -item[1])
        if shape in bf16_shapes
    ]
    if args.by_shape:
        print(markdown_table(shape_rows, ["input_shapes", "fp32_ms", "bf16_ms", "speed_up"]))

    write_report(args.json, {
        "benchmark": "step_profile",
        "machine": machine_info(),
        "settings": {key: str(value) for key, value in vars(args).items()},
        "load_average_1min_per_round": loads,
        "rows": rows,
        "conv_backward_by_shape": shape_rows,
    })


if __name__ == "__main__":
    main()
