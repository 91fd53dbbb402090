"""Time batched explanations against a per-image loop that rebuilds the method objects.

The per-image loop is how many studies explain a test set: for each image, build the Captum or
pytorch-grad-cam object, make the single input require grad, attribute, copy the map to numpy.
The model keeps ``requires_grad=True`` on its parameters, as after training. The batched path
is :func:`medxai.explain.explain_batched`, which builds each method once per batch, freezes the
parameters (no weight gradients) and stops Grad-CAM's backward pass at the target layer.

Both paths explain the same images and targets, and the script checks that their maps agree
(after min-max scaling, since pytorch-grad-cam scales its output) before it reports times.

Example:
    OMP_NUM_THREADS=2 python benchmarks/bench_explain.py --images 64 --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from pytorch_grad_cam import GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from medxai.explain import explain_batched
from medxai.models import build_resnet18

GOALS = {"gradcam": 10.0, "gradcampp": 10.0, "saliency": 10.0, "ig": 2.0}


def loop_gradcam(model: nn.Module, x: torch.Tensor, target: int, steps: int) -> np.ndarray:
    method = LayerGradCam(model, model.layer4)
    layer_map = method.attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(layer_map, tuple(x.shape[-2:]), "bilinear").detach().cpu().numpy()[:, 0]


def loop_gradcampp(model: nn.Module, x: torch.Tensor, target: int, steps: int) -> np.ndarray:
    with GradCAMPlusPlus(model=model, target_layers=[model.layer4]) as method:
        return method(input_tensor=x, targets=[ClassifierOutputTarget(target)])


def loop_ig(model: nn.Module, x: torch.Tensor, target: int, steps: int) -> np.ndarray:
    method = IntegratedGradients(model)
    attributions = method.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=steps)
    return attributions.sum(dim=1).detach().cpu().numpy()


def loop_saliency(model: nn.Module, x: torch.Tensor, target: int, steps: int) -> np.ndarray:
    method = Saliency(model)
    return method.attribute(x, target=target, abs=True).amax(dim=1).detach().cpu().numpy()


LOOPS: dict[str, Callable[[nn.Module, torch.Tensor, int, int], np.ndarray]] = {
    "gradcam": loop_gradcam,
    "gradcampp": loop_gradcampp,
    "ig": loop_ig,
    "saliency": loop_saliency,
}


def run_loop(method: str, model: nn.Module, x: torch.Tensor, targets: torch.Tensor, steps: int) -> np.ndarray:
    maps = []
    for image, target in zip(x, targets.tolist()):
        single = image[None].clone().requires_grad_(True)
        maps.append(LOOPS[method](model, single, target, steps))
        model.zero_grad(set_to_none=True)
    return np.concatenate(maps)


def run_batched(method: str, model: nn.Module, x: torch.Tensor, targets: torch.Tensor, args: argparse.Namespace) -> np.ndarray:
    options = {"n_steps": args.ig_steps, "internal_batch_size": args.ig_internal_batch_size} if method == "ig" else {}
    explanation = explain_batched(model, x, targets, method, batch_size=args.batch_size, **options)
    return explanation.maps[:, 0].cpu().numpy()


def min_max(maps: np.ndarray) -> np.ndarray:
    flat = maps.reshape(maps.shape[0], -1)
    low, high = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    return ((flat - low) / np.maximum(high - low, 1e-12)).reshape(maps.shape)


def timed(function: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64, help="test images explained by each path")
    parser.add_argument("--loop-images", type=int, default=None,
                        help="images timed in the per-image loop (default: --images); times are per image")
    parser.add_argument("--methods", nargs="+", default=list(LOOPS), choices=list(LOOPS))
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch of the batched path")
    parser.add_argument("--ig-steps", type=int, default=50, help="IG integration steps (both paths)")
    parser.add_argument("--ig-internal-batch-size", type=int, default=64,
                        help="scaled inputs per IG forward pass in the batched path")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--size", type=int, default=28, help="image side in pixels")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each path; the fastest counts")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_resnet18(args.channels, args.classes, image_size=args.size).eval()
    x = torch.randn(args.images, args.channels, args.size, args.size)
    with torch.no_grad():
        targets = model(x).argmax(dim=1)
    loop_count = args.loop_images or args.images

    # Floor of any method that needs one forward pass per image: a bare batched forward pass.
    with torch.no_grad():
        model(x[:2])
        forward_seconds = min(timed(lambda: model(x).numpy())[1] for _ in range(args.repeats))
    forward_per_image = forward_seconds / args.images
    print(f"forward pass only, batch {args.images}: {1e3 * forward_per_image:.1f} ms/img", flush=True)

    load_before = os.getloadavg()
    rows = []
    for method in args.methods:
        # Warm-up of both paths (allocator, oneDNN kernels) on two images.
        run_loop(method, model, x[:2], targets[:2], args.ig_steps)
        run_batched(method, model, x[:2], targets[:2], args)

        # Alternate the two paths and keep the fastest repeat of each, so that load from other
        # processes on a shared machine inflates neither path more than the other.
        loop_times, batched_times = [], []
        for _ in range(args.repeats):
            loop_maps, seconds = timed(lambda: run_loop(method, model, x[:loop_count], targets[:loop_count], args.ig_steps))
            loop_times.append(seconds)
            batched_maps, seconds = timed(lambda: run_batched(method, model, x, targets, args))
            batched_times.append(seconds)
        loop_seconds, batched_seconds = min(loop_times), min(batched_times)
        difference = float(np.abs(min_max(loop_maps) - min_max(batched_maps[:loop_count])).max())

        loop_per_image = loop_seconds / loop_count
        batched_per_image = batched_seconds / args.images
        speedup = loop_per_image / batched_per_image
        rows.append({
            "method": method,
            "loop_ms_per_image": 1e3 * loop_per_image,
            "batched_ms_per_image": 1e3 * batched_per_image,
            "speedup": speedup,
            "goal": GOALS[method],
            "met": speedup >= GOALS[method],
            "max_scaled_map_difference": difference,
            "loop_over_forward_pass": loop_per_image / forward_per_image,
        })
        print(f"{method:10s} loop {1e3 * loop_per_image:8.1f} ms/img  batched {1e3 * batched_per_image:8.1f} ms/img  "
              f"speed-up {speedup:5.1f}x (goal {GOALS[method]:.0f}x)  max map diff {difference:.1e}  "
              f"loop / forward pass {loop_per_image / forward_per_image:5.1f}", flush=True)

    report = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "forward_ms_per_image": 1e3 * forward_per_image,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "settings": vars(args),
        "results": rows,
    }
    print(json.dumps({key: report[key] for key in ("date", "machine", "torch", "threads",
                                                    "load_average_before", "load_average_after")}))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
