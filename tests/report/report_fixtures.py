"""Builders of fixture run directories in the layout a medxai run writes, from scratch in tmp_path."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

CLASS_NAMES = ["basophil", "eosinophil", "erythroblast", "immature granulocytes"]
METHODS = ["gradcam", "gradcam_pp", "integrated_gradients", "saliency"]
ALL_PARTS = ("config", "events", "test_metrics", "explanations", "quantus")

# One sample is predicted wrongly and one Integrated Gradients map failed, so both must show.
SAMPLES = [
    {"index": 3, "true_label": 0, "predicted_label": 0, "probability": 0.91},
    {"index": 17, "true_label": 1, "predicted_label": 2, "probability": 0.55},
    {"index": 42, "true_label": 2, "predicted_label": 2, "probability": 0.78},
]
IG_FAILURE = "attribution map contains NaN"
QUANTUS_FAILURE = "MPRT raised ValueError: layer 'fc' not found <in model>"
SKIPPED_REASON = "the dataset has no segmentation masks"
REFERENCE = "Selvaraju et al., Grad-CAM, ICCV 2017"

CONFIG_YAML = """\
# LightningCLI config saved at the start of fit. <b>not bold</b>
seed_everything: 1234
trainer:
  accelerator: cpu
  devices: 1
  max_epochs: 3
  callbacks:
  - class_path: medxai.averaging.EMAWeightAveraging
    init_args:
      decay: 0.99
model:
  class_path: medxai.module.MedMNISTClassifier
  init_args:
    lr: 0.001
    tta: true
data:
  class_path: medxai.data.MedMNISTDataModule
  init_args:
    dataset: bloodmnist
    image_size: 28
    batch_size: 64
"""


def write_png(path: Path, seed: int, title: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(1.6, 1.6))
    ax = fig.add_subplot()
    ax.imshow(np.random.default_rng(seed).random((28, 28)), cmap="jet")
    ax.set_title(title, fontsize=6)
    ax.axis("off")
    fig.savefig(path, format="png", dpi=60)


def write_csv(path: Path, header: list[str], rows: Iterable[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_config(run_dir: Path) -> None:
    (run_dir / "config.yaml").write_text(CONFIG_YAML)


def write_events(run_dir: Path) -> None:
    """Scalars under the tags MedMNISTClassifier logs, plus tags the report must leave out."""
    writer = SummaryWriter(log_dir=str(run_dir))
    for step in range(0, 30, 5):
        writer.add_scalar("train/loss_step", 2.0 / (step + 1), step)
    for epoch, step in enumerate((9, 19, 29)):
        writer.add_scalar("train/loss_epoch", 1.5 - 0.3 * epoch, step)
        writer.add_scalar("train/acc", 0.4 + 0.1 * epoch, step)
        writer.add_scalar("val/loss", 1.6 - 0.25 * epoch, step)
        writer.add_scalar("val/auc", 0.7 + 0.08 * epoch, step)
        writer.add_scalar("val/acc", 0.5 + 0.1 * epoch, step)
        writer.add_scalar("lr-AdamW", 1e-3 / (epoch + 1), step)
        writer.add_scalar("epoch", epoch, step)
    writer.add_scalar("test/acc", 0.88, 30)
    writer.add_scalar("quantus/faithfulness/FaithfulnessCorrelation/gradcam", 0.2, 30)
    writer.close()


def write_test_metrics(run_dir: Path) -> None:
    matrix = [[20, 1, 0, 0], [2, 15, 3, 0], [0, 1, 30, 1], [0, 0, 2, 9]]
    metrics = {
        "dataset": "bloodmnist",
        "task": "multi-class",
        "class_names": CLASS_NAMES,
        "checkpoint": "checkpoints/epoch=2-step=29.ckpt",
        "metrics": {"acc": 0.880952, "auc": 0.9712, "f1_macro": 0.8611},
        "per_class": [
            {"class": name, "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": sum(row)}
            for name, row in zip(CLASS_NAMES, matrix)
        ],
        "confusion_matrix": matrix,
    }
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics))


def write_explanations(run_dir: Path) -> None:
    """Files in the layout of medxai.explain.writer: overlays, grids, summary, npz and the JSON index."""
    out = run_dir / "explanations"
    samples = []
    for position, sample in enumerate(SAMPLES):
        methods: dict[str, dict[str, object]] = {}
        for column, method in enumerate(METHODS):
            if method == "integrated_gradients" and position == 1:
                methods[method] = {"status": "failed", "reason": IG_FAILURE, "file": None}
                continue
            relative = f"{method}/{sample['index']}.png"
            write_png(out / relative, seed=10 * position + column, title=method)
            methods[method] = {"status": "ok", "file": relative}
            if method == "integrated_gradients":
                methods[method]["convergence_delta"] = 0.0012
        samples.append(
            {
                **sample,
                "true_name": CLASS_NAMES[sample["true_label"]],
                "predicted_name": CLASS_NAMES[sample["predicted_label"]],
                "explained_label": sample["predicted_label"],
                "methods": methods,
            }
        )
    facts = {
        method: {"title": method.replace("_", " "), "reference": REFERENCE, "seconds": 0.5, "failed": 0}
        for method in METHODS
    }
    record = {
        "settings": {"methods": METHODS, "target": "predicted", "layer": "layer4", "subset_size": 3},
        "class_names": CLASS_NAMES,
        "count": len(samples),
        "methods": facts,
        "samples": samples,
    }
    (out / "explanations.json").write_text(json.dumps(record))
    write_png(out / "summary.png", seed=99, title="summary")
    write_png(out / "gradcam_grid.png", seed=98, title="gradcam grid")
    np.savez_compressed(
        out / "attributions.npz",
        indices=np.array([s["index"] for s in SAMPLES]),
        gradcam=np.zeros((len(SAMPLES), 28, 28), dtype=np.float32),
    )


METRIC_REFERENCE = "Bhatt et al. 2020, Evaluating and aggregating feature-based model explanations, IJCAI"


def write_quantus(run_dir: Path) -> None:
    out = run_dir / "quantus"
    write_csv(
        out / "summary.csv",
        ["method", "property", "metric", "mean", "std", "ci_low", "ci_high", "n"],
        [
            [method, "faithfulness", "FaithfulnessCorrelation", mean, 0.05, mean - 0.02, mean + 0.02, 3]
            for method, mean in zip(METHODS, (0.0, 0.1, 0.2, 0.3))
        ],
    )
    write_csv(
        out / "normalized.csv",
        ["method", "FaithfulnessCorrelation", "Sparseness"],
        [[method, i / 3, 1 - i / 3] for i, method in enumerate(METHODS)],
    )
    write_csv(
        out / "stats.csv",
        ["metric", "method_a", "method_b", "rank_a", "rank_b", "wilcoxon_p", "holm_p", "significant"],
        [["FaithfulnessCorrelation", "gradcam", "saliency", 1, 4, 0.01, 0.04, True]],
    )
    write_png(out / "radar.png", seed=7, title="radar")
    scores = {
        "config": {"seed": 1234, "metrics": ["FaithfulnessCorrelation", "MPRT"]},
        "versions": {"quantus": "0.6.0", "torch": "2.14.1"},
        "metrics": {
            "FaithfulnessCorrelation": {
                "property": "faithfulness",
                "direction": "higher",
                "reference": METRIC_REFERENCE,
                "note": "Pearson correlation between attribution sums and logit drops.",
                "params": {"nr_runs": 30, "disable_warnings": True, "display_progressbar": False},
            }
        },
        "scores": {"gradcam": {"FaithfulnessCorrelation": [0.1, 0.2, float("nan")]}},
        "failures": [
            {"method": "saliency", "metric": "MPRT", "reason": QUANTUS_FAILURE, "n_failed": 3, "n_total": 3}
        ],
        "skipped": {"PointingGame": SKIPPED_REASON},
    }
    (out / "scores.json").write_text(json.dumps(scores))


WRITERS: dict[str, Callable[[Path], None]] = {
    "config": write_config,
    "events": write_events,
    "test_metrics": write_test_metrics,
    "explanations": write_explanations,
    "quantus": write_quantus,
}


def make_run_dir(root: Path, parts: Iterable[str] = ALL_PARTS) -> Path:
    """Create lightning_logs/version_0 under ``root`` with the requested parts of a run."""
    run_dir = root / "lightning_logs" / "version_0"
    run_dir.mkdir(parents=True)
    for part in parts:
        WRITERS[part](run_dir)
    return run_dir
