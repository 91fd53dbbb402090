"""Write the files of an explanation run: overlays, grids, summary, raw maps and a JSON index.

Layout under ``out_dir`` (all written atomically through :mod:`medxai.io`):

* ``<method>/<index>.png``: image and overlay for each image the method explained (status ok);
* ``<method>_grid.png``: overlays of the first ``grid_size`` images;
* ``summary.png``: first ``summary_size`` images (rows) by image and methods (columns);
* ``attributions.npz``: per method the raw maps float32 ``(N, H, W)`` (NaN where the method
  raised), ``<method>_delta`` for IG, and ``indices``, ``labels``, ``predictions``,
  ``probabilities`` and ``targets`` ``(N,)``;
* ``explanations.json``: settings, per method its paper, time and counts, and per image its
  index, labels, probability and per method the status, reason and file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from medxai import io
from medxai.explain.methods import get_method
from medxai.explain.render import method_grid, sample_figure, summary_figure
from medxai.explain.runner import SubsetResult

log = logging.getLogger(__name__)


def write_explanations(
    out_dir: str | Path,
    result: SubsetResult,
    display_images: np.ndarray,
    class_names: Sequence[str],
    settings: Mapping[str, Any],
    summary_size: int = 8,
    grid_size: int = 64,
) -> Figure:
    """Write every output file of an explanation run and return the summary figure.

    Args:
        out_dir: Folder to write into, e.g. ``<log dir>/explanations``.
        result: Maps and predictions of all images, in subset order.
        display_images: The same images for display, float ``(N, C, H, W)`` in [0, 1].
        class_names: Name of each class index.
        settings: Run settings recorded in the JSON (methods, layer, target, ...).
        summary_size: Images (rows) in the summary figure.
        grid_size: Images in each method's grid.

    Returns:
        The summary figure, e.g. for TensorBoard.
    """
    out_dir = Path(out_dir)
    images = [np.asarray(image, dtype=np.float32) for image in display_images]
    names = [_class_name(class_names, int(label)) for label in result.labels]
    predicted = [_class_name(class_names, int(label)) for label in result.predictions]

    # Class names can contain commas or slashes ("normal, benign"), so each gets its own line.
    captions = [
        f"#{index}\ntrue: {true}\npred: {pred}" for index, true, pred in zip(result.indices, names, predicted)
    ]

    files: dict[str, list[str | None]] = {}
    for name, maps in result.maps.items():
        log.info("Rendering %s overlays of %d images", get_method(name).title, len(images))
        files[name] = _write_overlays(out_dir, name, result, images, names, predicted)
        grid = method_grid(
            images[:grid_size],
            list(maps[:grid_size]),
            get_method(name).signed,
            captions[:grid_size],
            get_method(name).title,
        )
        io.save_figure(grid, out_dir / f"{name}_grid.png")

    summary = summary_figure(
        images[:summary_size],
        {get_method(name).title: (list(maps[:summary_size]), get_method(name).signed) for name, maps in result.maps.items()},
        captions[:summary_size],
    )
    io.save_figure(summary, out_dir / "summary.png")

    arrays: dict[str, np.ndarray] = {
        "indices": result.indices,
        "labels": result.labels,
        "predictions": result.predictions,
        "probabilities": result.probabilities,
        "targets": result.targets,
    }
    arrays.update({name: maps.astype(np.float32) for name, maps in result.maps.items()})
    arrays.update({f"{name}_delta": delta for name, delta in result.deltas.items()})
    io.write_npz(out_dir / "attributions.npz", **arrays)

    io.write_json(out_dir / "explanations.json", _index(result, class_names, settings, files, summary_size, grid_size))
    return summary


def _write_overlays(
    out_dir: Path,
    name: str,
    result: SubsetResult,
    images: list[np.ndarray],
    true_names: list[str],
    predicted_names: list[str],
) -> list[str | None]:
    """Save ``<name>/<index>.png`` for each image the method explained; return relative paths."""
    method = get_method(name)
    paths: list[str | None] = []
    for position, image in enumerate(images):
        if result.failures[name][position] is not None:
            paths.append(None)
            continue
        index = int(result.indices[position])
        title = (
            f"{method.title} #{index}\ntrue: {true_names[position]} | predicted: "
            f"{predicted_names[position]} ({result.probabilities[position]:.2f})"
        )
        figure = sample_figure(image, result.maps[name][position], method.signed, title)
        relative = f"{name}/{index}.png"
        io.save_figure(figure, out_dir / relative)
        paths.append(relative)
    return paths


def _index(
    result: SubsetResult,
    class_names: Sequence[str],
    settings: Mapping[str, Any],
    files: Mapping[str, list[str | None]],
    summary_size: int,
    grid_size: int,
) -> dict[str, Any]:
    """Build the content of ``explanations.json``."""
    methods = {}
    for name, failures in result.failures.items():
        method = get_method(name)
        failed = sum(reason is not None for reason in failures)
        methods[name] = {
            "title": method.title,
            "reference": method.reference,
            "library": method.library,
            "signed": method.signed,
            "seconds": round(result.seconds.get(name, 0.0), 3),
            "ok": len(failures) - failed,
            "failed": failed,
            "grid": f"{name}_grid.png",
        }
        if name in result.deltas:
            finite = result.deltas[name][np.isfinite(result.deltas[name])]
            methods[name]["max_abs_convergence_delta"] = float(np.abs(finite).max()) if finite.size else None

    samples = []
    for position, index in enumerate(result.indices.tolist()):
        per_method = {}
        for name, failures in result.failures.items():
            entry: dict[str, Any] = {"status": "ok" if failures[position] is None else "failed"}
            if failures[position] is not None:
                entry["reason"] = failures[position]
            entry["file"] = files.get(name, [None] * len(failures))[position]
            if name in result.deltas:
                entry["convergence_delta"] = float(result.deltas[name][position])
            per_method[name] = entry
        samples.append(
            {
                "index": index,
                "true_label": int(result.labels[position]),
                "true_name": _class_name(class_names, int(result.labels[position])),
                "predicted_label": int(result.predictions[position]),
                "predicted_name": _class_name(class_names, int(result.predictions[position])),
                "probability": float(result.probabilities[position]),
                "explained_label": int(result.targets[position]),
                "methods": per_method,
            }
        )

    return {
        "settings": dict(settings),
        "class_names": list(class_names),
        "count": len(samples),
        "methods": methods,
        "files": {"attributions": "attributions.npz", "summary": "summary.png", "summary_rows": min(summary_size, len(samples)),
                  "grid_images": min(grid_size, len(samples))},
        "samples": samples,
    }


def _class_name(class_names: Sequence[str], label: int) -> str:
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label)
