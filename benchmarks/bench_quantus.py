"""Time medxai's Quantus suite against Quantus called one metric and one method at a time.

The suite side is what ``QuantusCallback`` runs: ``medxai.evaluation.run_suite`` with the
registry defaults (maps computed once per method and reused, per-sample normalisation,
MaxSensitivity from AvgSensitivity's perturbations, IG with 16 steps), 4 methods and every
metric, on ``--images`` test images.

The baseline calls each Quantus metric separately for each method with the parameters of the
original study (FaithfulnessCorrelation nr_runs=30 and subset_size=224, AvgSensitivity
nr_samples=30, MPRT with skip_layers=True, RegionPerturbation regions_evaluation=30),
MaxSensitivity with the same nr_samples as AvgSensitivity, and Quantus's defaults otherwise. Quantus computes the maps itself
(``a_batch=None``) through the same medxai ``explain_func``, with IG at 50 steps. So both sides
use the same attribution code, and the difference is the evaluation design. The baseline is
slow, so it runs on ``--baseline-images`` images and its time is scaled linearly per image to
``--images``. The scaled number is an estimate.

Both sides use a ResNet-18 (small stem, 28 px) trained for 2 epochs on 512 synthetic
known-signal images (not timed), so that every metric, including the mask-based ones, runs.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_quantus.py --images 100 --baseline-images 10 \\
        --json benchmarks/results/quantus.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import quantus
import torch
import torch.nn.functional as F

from bench_common import machine_info, markdown_table, write_report  # also puts the checkout on sys.path
from medxai.data.synthetic import make_known_signal
from medxai.evaluation import QuantusExplainFunc, build_focus_mosaics, library_versions, run_suite
from medxai.evaluation.suite import METRIC_NAMES
from medxai.models import build_resnet18

METHODS = ("gradcam", "gradcampp", "ig", "saliency")
MEAN, STD = 0.33, 0.12

log = logging.getLogger("bench_quantus")


def baseline_metric(name: str, num_classes: int) -> Any:
    """Return the Quantus metric ``name`` with the original study's parameters (Quantus defaults otherwise)."""
    common = {"disable_warnings": True}
    study = {
        "FaithfulnessCorrelation": lambda: quantus.FaithfulnessCorrelation(
            nr_runs=30, subset_size=224, return_aggregate=False, **common
        ),
        "RegionPerturbation": lambda: quantus.RegionPerturbation(regions_evaluation=30, **common),
        "AvgSensitivity": lambda: quantus.AvgSensitivity(nr_samples=30, **common),
        "MaxSensitivity": lambda: quantus.MaxSensitivity(nr_samples=30, **common),
        "Complexity": lambda: quantus.Complexity(**common),
        "Sparseness": lambda: quantus.Sparseness(**common),
        "MPRT": lambda: quantus.MPRT(skip_layers=True, return_last_correlation=True, **common),
        "RandomLogit": lambda: quantus.RandomLogit(num_classes=num_classes, **common),
        "Focus": lambda: quantus.Focus(**common),
        "PointingGame": lambda: quantus.PointingGame(**common),
        "RelevanceRankAccuracy": lambda: quantus.RelevanceRankAccuracy(**common),
        "AttributionLocalisation": lambda: quantus.AttributionLocalisation(**common),
    }
    return study[name]()


def prepare(test_images: int, seed: int) -> dict[str, Any]:
    """Train the benchmark model and return it with normalised test data, masks and mosaics."""
    arrays = make_known_signal(512, 0, max(test_images, 16), seed=seed)

    def normalise(images: np.ndarray) -> np.ndarray:
        return ((images.astype(np.float32)[:, None] / 255.0 - MEAN) / STD).astype(np.float32)

    x_train = torch.from_numpy(normalise(arrays["train_images"]))
    y_train = torch.from_numpy(arrays["train_labels"][:, 0].astype(np.int64))
    torch.manual_seed(seed)
    model = build_resnet18(1, 2, 28)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(2):
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), 32):
            index = order[start : start + 32]
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()

    x = normalise(arrays["test_images"])
    y = arrays["test_labels"][:, 0].astype(np.int64)
    return {"model": model, "x": x, "y": y, "masks": arrays["test_masks"][:, None]}


def run_medxai_suite(data: dict[str, Any], count: int, seed: int) -> dict[str, Any]:
    """Time one ``run_suite`` call with the callback's defaults on ``count`` images."""
    x, y, masks = data["x"][:count], data["y"][:count], data["masks"][:count]
    funcs = {
        method: QuantusExplainFunc(method, options={"n_steps": 16} if method == "ig" else None)
        for method in METHODS
    }
    counter = ForwardCounter()
    handle = data["model"].register_forward_pre_hook(counter)
    started, cpu_started = time.perf_counter(), time.process_time()
    mosaics = build_focus_mosaics(data["x"], data["y"], np.arange(count), seed=seed)
    result = run_suite(data["model"], x, y, funcs, num_classes=2, masks=masks, mosaics=mosaics, seed=seed, batch_size=50)
    total, cpu_total = time.perf_counter() - started, time.process_time() - cpu_started
    handle.remove()
    per_metric = {name: float(sum(per_method.values())) for name, per_method in result.seconds.items()}
    return {
        "images": count,
        "seconds": total,
        "cpu_seconds": cpu_total,
        **counter.snapshot(),
        "per_metric_seconds": per_metric,
        "failures": [failure.as_dict() for failure in result.failures],
    }


def run_baseline(data: dict[str, Any], count: int, seed: int) -> dict[str, Any]:
    """Time every (metric, method) Quantus call with the study's parameters on ``count`` images."""
    x, y, masks = data["x"][:count], data["y"][:count], data["masks"][:count]
    mosaics = build_focus_mosaics(data["x"], data["y"], np.arange(count), seed=seed)
    funcs = {method: QuantusExplainFunc(method, options={"n_steps": 50} if method == "ig" else None) for method in METHODS}
    per_metric: dict[str, float] = {}
    failures = []
    counter = ForwardCounter()
    handle = data["model"].register_forward_pre_hook(counter)
    started, cpu_started = time.perf_counter(), time.process_time()
    for name in METRIC_NAMES:
        per_metric[name] = 0.0
        if name == "Focus":
            inputs = {"x_batch": mosaics.images, "y_batch": mosaics.targets, "custom_batch": mosaics.positions}
        elif name in ("PointingGame", "RelevanceRankAccuracy", "AttributionLocalisation"):
            inputs = {"x_batch": x, "y_batch": y, "a_batch": None, "s_batch": masks}
        else:
            inputs = {"x_batch": x, "y_batch": y, "a_batch": None}

        for method, func in funcs.items():
            np.random.seed(seed)
            torch.manual_seed(seed)
            call_started = time.perf_counter()
            try:
                with torch.inference_mode(False):
                    baseline_metric(name, 2)(model=data["model"], explain_func=func, device="cpu", **inputs)
            except Exception as err:  # noqa: BLE001 - a failing call is reported, its time still counts
                failures.append({"metric": name, "method": method, "reason": f"{type(err).__name__}: {err}"})
            elapsed = time.perf_counter() - call_started
            per_metric[name] += elapsed
            log.info("baseline %s / %s: %.1f s", name, method, elapsed)
    handle.remove()
    return {
        "images": count,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        **counter.snapshot(),
        "per_metric_seconds": per_metric,
        "failures": failures,
    }


class ForwardCounter:
    """Count the images that pass through a model's forward, with and without autograd.

    Images are counted in units of one 28 x 28 image, so a 56 x 56 Focus mosaic counts 4.
    The hook is a forward pre-hook on the top module, so deep copies (MPRT's randomised
    models) carry it and are counted too. IG's scaled inputs are counted one by one.
    """

    def __init__(self) -> None:
        self.with_grad = 0
        self.without_grad = 0

    def __call__(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        inputs = args[0]
        count = int(inputs.shape[0]) * int(inputs.shape[-1] * inputs.shape[-2]) // (28 * 28)
        if torch.is_grad_enabled():
            self.with_grad += count
        else:
            self.without_grad += count

    def snapshot(self) -> dict[str, int]:
        return {"forward_images_with_grad": self.with_grad, "forward_images_without_grad": self.without_grad}


def per_image_costs(model: torch.nn.Module, repeats: int = 15) -> dict[str, float]:
    """Time one forward and one forward+backward of a 50-image batch; the minimum over repeats.

    Parameters are frozen during the timing, as during attribution, so the backward pass
    computes input gradients only. The minimum is the usual estimate of the time on an idle
    machine, because load from other processes only ever adds time. On a machine that stays
    loaded it is still too high.
    """
    x = torch.randn(50, 1, 28, 28)
    flags = [parameter.requires_grad for parameter in model.parameters()]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    forward, forward_backward = [], []
    for _ in range(repeats):
        with torch.no_grad():
            started = time.perf_counter()
            model(x)
            forward.append(time.perf_counter() - started)
        inputs = x.clone().requires_grad_(True)
        started = time.perf_counter()
        model(inputs)[:, 0].sum().backward()
        forward_backward.append(time.perf_counter() - started)
    for parameter, flag in zip(model.parameters(), flags):
        parameter.requires_grad_(flag)
    return {"forward_seconds_per_image": min(forward) / 50, "forward_backward_seconds_per_image": min(forward_backward) / 50}


def estimated_idle_seconds(counts: dict[str, int], costs: dict[str, float]) -> float:
    """Estimate the wall time on an idle machine from image counts and per-image costs."""
    return (
        counts["forward_images_without_grad"] * costs["forward_seconds_per_image"]
        + counts["forward_images_with_grad"] * costs["forward_backward_seconds_per_image"]
    )


#: Rows of the comparison table; metrics that share work are timed together.
TABLE_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("maps computed once per method", ("explanation",)),
    ("FaithfulnessCorrelation", ("FaithfulnessCorrelation",)),
    ("RegionPerturbation", ("RegionPerturbation",)),
    ("AvgSensitivity + MaxSensitivity", ("AvgSensitivity", "MaxSensitivity")),
    ("Complexity + Sparseness", ("Complexity", "Sparseness")),
    ("MPRT", ("MPRT",)),
    ("RandomLogit", ("RandomLogit",)),
    ("Focus", ("Focus",)),
    ("PointingGame + RelevanceRankAccuracy + AttributionLocalisation",
     ("PointingGame", "RelevanceRankAccuracy", "AttributionLocalisation")),
)


def markdown(suite: dict[str, Any], baseline: dict[str, Any]) -> str:
    """Format per-metric times of both sides, the baseline scaled to the suite's images, as Markdown.

    The suite computes each method's maps once (first row), and the metrics that only reuse them
    take well under a second, so their ratio is not shown. The baseline recomputes maps in every call.
    """
    scale = suite["images"] / baseline["images"]
    ours_label = f"medxai, {suite['images']} images (s)"
    theirs_label = f"baseline, {baseline['images']} images (s)"
    scaled_label = f"baseline scaled to {suite['images']} (s)"
    rows = []
    for label, names in TABLE_ROWS:
        ours = sum(suite["per_metric_seconds"].get(name, 0.0) for name in names)
        theirs = sum(baseline["per_metric_seconds"].get(name, 0.0) for name in names)
        row: dict[str, Any] = {"metrics": label, ours_label: ours, theirs_label: theirs, scaled_label: theirs * scale}
        row["ratio"] = f"{theirs * scale / ours:.1f}x" if ours >= 1.0 and theirs > 0 else ""
        rows.append(row)
    rows.append(
        {
            "metrics": "total",
            ours_label: suite["seconds"],
            theirs_label: baseline["seconds"],
            scaled_label: baseline["seconds"] * scale,
            "ratio": f"{baseline['seconds'] * scale / suite['seconds']:.1f}x",
        }
    )
    return markdown_table(rows, list(rows[0]))


def compare(suite: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Return the ratios of the baseline, scaled per image to the suite's images, over the suite."""
    scale = suite["images"] / baseline["images"]
    work_suite = suite["forward_images_with_grad"] + suite["forward_images_without_grad"]
    work_baseline = (baseline["forward_images_with_grad"] + baseline["forward_images_without_grad"]) * scale
    return {
        "wall": baseline["seconds"] * scale / suite["seconds"],
        "cpu": baseline["cpu_seconds"] * scale / suite["cpu_seconds"],
        "forward_images_with_grad": baseline["forward_images_with_grad"] * scale / suite["forward_images_with_grad"],
        "forward_images": work_baseline / work_suite,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100, help="Test images for the medxai suite.")
    parser.add_argument("--baseline-images", type=int, default=10, help="Test images for the baseline (0 skips it).")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-suite", action="store_true", help="Run only the baseline.")
    parser.add_argument("--json", default=None, help="Also write the JSON report to this file.")
    parser.add_argument(
        "--combine", nargs=2, metavar=("SUITE_JSON", "BASELINE_JSON"), default=None,
        help="Run nothing: compare the suite and baseline of two earlier reports and print the table.",
    )
    args = parser.parse_args()

    # Quantus logs a line per call on the root logger, so only medxai and this script log INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    for name in ("bench_quantus", "medxai"):
        logging.getLogger(name).setLevel(logging.INFO)

    if args.combine:
        suite = json.loads(Path(args.combine[0]).read_text())["suite"]
        baseline = json.loads(Path(args.combine[1]).read_text())["baseline"]
        print(markdown(suite, baseline))
        print(json.dumps(compare(suite, baseline), indent=2))
        return

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"command": " ".join(sys.argv), "machine": machine_info(), "versions": library_versions()}
    data = prepare(max(args.images, args.baseline_images), args.seed)
    costs = per_image_costs(data["model"])
    report["per_image_costs"] = costs

    if not args.skip_suite:
        suite = run_medxai_suite(data, args.images, args.seed)
        suite["estimated_idle_seconds"] = estimated_idle_seconds(suite, costs)
        report["suite"] = suite
        log.info("medxai suite: %.1f s on %d images", suite["seconds"], args.images)
    if args.baseline_images > 0:
        baseline = run_baseline(data, args.baseline_images, args.seed)
        baseline["estimated_idle_seconds"] = estimated_idle_seconds(baseline, costs)
        report["baseline"] = baseline
        log.info("baseline: %.1f s on %d images", baseline["seconds"], args.baseline_images)
    if "suite" in report and "baseline" in report:
        report["ratios"] = compare(report["suite"], report["baseline"])
        print(markdown(report["suite"], report["baseline"]))
    report["load_average_after"] = list(os.getloadavg())
    write_report(args.json, report)


if __name__ == "__main__":
    main()
