"""Lightning callback that scores the attribution methods with Quantus after testing."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from medxai.evaluation.explain_func import QuantusExplainFunc
from medxai.evaluation.mosaic import FocusMosaics, plan_focus_mosaics, tile_mosaics
from medxai.evaluation.runner import SuiteResult, merge_results, run_suite
from medxai.evaluation.suite import METRIC_NAMES, validate_metric_names, validate_overrides
from medxai.evaluation.writer import EvaluationReport, write_evaluation
from medxai.explain.layers import resolve_layer
from medxai.explain.methods import METHODS, get_method, validate_options
from medxai.explain.subset import select_subset, shard_indices, validate_subset_args

log = logging.getLogger(__name__)

#: Datamodule members the callback reads.
DATAMODULE_CONTRACT: tuple[str, ...] = ("split_arrays", "preprocess", "num_classes", "test_masks")
TARGETS: tuple[str, ...] = ("true", "predicted")

#: Method options used unless ``explain_options`` overrides them. 16 Gauss-Legendre steps keep
#: IG within the time budget of the full suite (the explanation callback uses 50).
DEFAULT_EXPLAIN_OPTIONS: dict[str, dict[str, Any]] = {"ig": {"n_steps": 16}}


@dataclass
class _ShardResult:
    """Share of one rank: positions of its samples in the subset, their targets and their scores."""

    positions: np.ndarray
    targets: np.ndarray
    result: SuiteResult | None


class QuantusCallback(Callback):
    """Score attribution methods on a fixed test subset with Quantus, with statistics.

    The callback acts once testing ends (``on_test_end``). ``medxai fit`` tests the best
    checkpoint right after training, and ``medxai test --ckpt_path PATH`` reruns the whole
    evaluation from a checkpoint without training. It explains ``pl_module.model`` on test
    images read with ``trainer.datamodule.split_arrays("test")`` and preprocessed with
    ``datamodule.preprocess``, and runs :func:`medxai.evaluation.run_suite` (see
    :mod:`medxai.evaluation.suite` for each metric, its paper and its defaults).

    Localisation: Focus runs on 2 x 2 mosaics of test images (two of the sample's true class,
    two of other classes) on every dataset. The mask-based metrics (PointingGame,
    RelevanceRankAccuracy, AttributionLocalisation) run only when ``datamodule.test_masks()``
    returns masks, i.e. on the synthetic known-signal dataset; elsewhere they are recorded as
    skipped.

    Outputs go to ``<trainer.log_dir>/quantus/`` (see :mod:`medxai.evaluation.writer`).
    Each TensorBoard logger gets the scalars ``quantus/<property>/<metric>/<method>`` (the
    method's mean score) and the figure ``quantus/radar``. Under DDP every rank scores its
    share of the subset, the results are gathered and rank 0 writes the files. Per-sample
    scores of the random metrics then depend on the number of ranks, because every rank
    starts its random draws from ``seed``.

    Args:
        methods: Attribution methods, keys of :data:`medxai.explain.METHODS`.
        metrics: Metric names from :data:`medxai.evaluation.suite.METRIC_NAMES`; None runs all
            of them (five properties).
        subset_size: Number of test images scored (clamped to the split with a warning).
        subset: How to choose them: ``"first"``, ``"random"`` or ``"stratified"`` by class.
        seed: Seed of the subset choice, the mosaics, every random draw of the metrics and
            the bootstrap.
        target: Class each map explains: ``"true"`` (the label, as Quantus's examples use)
            or ``"predicted"``. Focus mosaics always explain the true class of their anchor.
        layer: Target layer of layer methods, a module name relative to ``pl_module.model``.
        batch_size: Samples per Quantus batch.
        explain_options: ``{method: {option: value}}`` passed to ``medxai.explain``, merged over
            :data:`DEFAULT_EXPLAIN_OPTIONS` (e.g. ``{"ig": {"n_steps": 32}}``).
        metric_params: ``{metric: {parameter: value}}`` overriding the registry defaults
            (e.g. ``{"AvgSensitivity": {"nr_samples": 30}}``).
        confidence: Level of the bootstrap confidence intervals.
        n_resamples: Bootstrap resamples.
        enabled: Switch the callback off without removing it from the config.

    Raises:
        ValueError: If a setting is invalid; the message names it and the allowed values.

    Example (YAML for LightningCLI)::

        trainer:
          callbacks:
            - class_path: callbacks.QuantusCallback
              init_args:
                methods: [gradcam, gradcampp, ig, saliency]
                subset_size: 100
                metric_params:
                  FaithfulnessCorrelation: {nr_runs: 50}
    """

    def __init__(
        self,
        methods: Sequence[str] = ("gradcam", "gradcampp", "ig", "saliency"),
        metrics: Sequence[str] | None = None,
        subset_size: int = 100,
        subset: str = "stratified",
        seed: int = 42,
        target: str = "true",
        layer: str = "layer4",
        batch_size: int = 50,
        explain_options: Mapping[str, Mapping[str, Any]] | None = None,
        metric_params: Mapping[str, Mapping[str, Any]] | None = None,
        confidence: float = 0.95,
        n_resamples: int = 2000,
        enabled: bool = True,
    ) -> None:
        super().__init__()
        self.methods = _check_methods(methods)
        self.metrics = validate_metric_names(list(METRIC_NAMES) if metrics is None else list(metrics))
        validate_subset_args(subset_size, subset)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"Invalid seed={seed!r}. Expected an integer.")
        if target not in TARGETS:
            raise ValueError(f"Invalid target={target!r}. Expected one of {', '.join(TARGETS)}.")
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"Invalid layer={layer!r}. Expected a module name such as 'layer4'.")
        _check_positive("batch_size", batch_size)
        _check_positive("n_resamples", n_resamples)
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"Invalid confidence={confidence!r}. Expected a level in (0, 1), e.g. 0.95.")

        self.subset_size = subset_size
        self.subset = subset
        self.seed = seed
        self.target = target
        self.layer = layer
        self.batch_size = batch_size
        self.explain_options = _merge_explain_options(self.methods, explain_options)
        self.metric_params = validate_overrides(metric_params)
        self.confidence = confidence
        self.n_resamples = n_resamples
        self.enabled = enabled

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Check the model, its target layer and the datamodule before any work is done."""
        if not self.enabled:
            return
        model = _explained_model(pl_module)
        if any(get_method(name).uses_layer for name in self.methods):
            resolve_layer(model, self.layer)
        _check_datamodule(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Score the methods on the test subset once testing has finished."""
        if not self.enabled or trainer.sanity_checking:
            return
        self._evaluate(trainer, pl_module)

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = _check_datamodule(trainer)
        model = _explained_model(pl_module)
        images, labels = datamodule.split_arrays("test")
        indices = select_subset(labels, self.subset_size, self.subset, self.seed)
        positions = shard_indices(indices, trainer.global_rank, trainer.world_size)
        rank_zero_info(
            f"Quantus: scoring {', '.join(self.methods)} on {indices.numel()} test images with "
            f"{len(self.metrics)} metrics (target: {self.target} class, seed {self.seed})."
        )

        # trainer.log_dir broadcasts from rank 0 under DDP, so every rank must read it.
        out_dir = Path(trainer.log_dir or trainer.default_root_dir) / "quantus"
        started = time.perf_counter()
        local: _ShardResult | BaseException
        try:
            local = self._evaluate_shard(trainer, model, datamodule, images, labels, indices, positions)
        except Exception as err:  # Gather even after an error, so that no rank waits forever.
            local = err
        parts = _gather(local, trainer.world_size)
        errors = [part for part in parts if isinstance(part, BaseException)]
        if errors:
            raise RuntimeError(f"Quantus evaluation of the test subset failed: {errors[0]}") from errors[0]
        try:
            if trainer.global_rank == 0:
                self._write(trainer, datamodule, labels, indices, parts, out_dir, started)
        finally:
            # Every rank leaves together, so none tears down its process group while rank 0 writes.
            # NOTE: a rank-1 SIGABRT under ddp_spawn, seen once in CI and not reproduced, led to
            # this barrier. Whether an early teardown caused it is unconfirmed.
            trainer.strategy.barrier("quantus_written")

    def _write(
        self,
        trainer: pl.Trainer,
        datamodule: Any,
        labels: Tensor,
        indices: Tensor,
        parts: list[Any],
        out_dir: Path,
        started: float,
    ) -> None:
        """Merge the ranks' scores and write the tables, statistics and TensorBoard scalars (rank 0)."""
        shards = [part for part in parts if isinstance(part, _ShardResult)]
        result = merge_results([(shard.positions, shard.result) for shard in shards], indices.numel())
        targets = np.zeros(indices.numel(), dtype=np.int64)
        for shard in shards:
            targets[shard.positions] = shard.targets
        samples = {"index": indices.tolist(), "label": labels[indices].tolist(), "target": targets.tolist()}
        report = write_evaluation(
            out_dir,
            result,
            samples,
            self._settings(trainer, datamodule, indices.numel()),
            self.confidence,
            self.n_resamples,
            self.seed,
        )
        _log_to_tensorboard(trainer, report)
        partial = sum(1 for failure in result.failures if failure.n_failed < failure.n_total)
        rank_zero_info(
            f"Quantus: wrote {out_dir} in {time.perf_counter() - started:.1f} s. "
            f"{len(result.failures) - partial} (method, metric) pair(s) failed entirely and {partial} "
            f"scored NaN on some samples, which the statistics leave out. "
            f"{len(result.skipped)} metric(s) skipped."
        )

    def _evaluate_shard(
        self,
        trainer: pl.Trainer,
        model: nn.Module,
        datamodule: Any,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        positions: Tensor,
    ) -> _ShardResult:
        """Score this rank's share of the subset; a share without samples has no result."""
        if positions.numel() == 0:
            return _ShardResult(positions.numpy(), np.zeros(0, dtype=np.int64), None)
        device = _model_device(model)
        shard = indices[positions]
        x = self._inputs(datamodule, images[shard], device)
        targets = self._targets(model, x, labels[shard])
        masks = self._masks(datamodule, shard, x.shape[-1])
        mosaics, mosaic_error = self._mosaics(datamodule, images, labels, indices, positions, device)

        funcs = {
            method: QuantusExplainFunc(method, self.layer, options=self._method_options(method, datamodule))
            for method in self.methods
        }
        result = run_suite(
            model,
            x.cpu().numpy(),
            targets.cpu().numpy(),
            funcs,
            self.metrics,
            num_classes=int(datamodule.num_classes),
            masks=masks,
            mosaics=mosaics,
            metric_params=self.metric_params,
            seed=self.seed,
            batch_size=self.batch_size,
            progress=trainer.global_rank == 0,
        )
        if mosaic_error is not None and "Focus" in result.skipped:
            result.skipped["Focus"] = f"cannot build Focus mosaics: {mosaic_error}"
        return _ShardResult(positions.numpy(), targets.cpu().numpy().astype(np.int64), result)

    def _inputs(self, datamodule: Any, images: Tensor, device: torch.device) -> Tensor:
        with torch.no_grad():
            return datamodule.preprocess(images.to(device)).float()

    def _targets(self, model: nn.Module, x: Tensor, labels: Tensor) -> Tensor:
        if self.target == "true":
            return labels.to(torch.int64)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            predicted = model(x).argmax(dim=1).cpu()
        model.train(was_training)
        return predicted

    def _masks(self, datamodule: Any, shard: Tensor, image_size: int) -> np.ndarray | None:
        masks = datamodule.test_masks()
        if masks is None:
            return None
        chosen = masks[shard].to(torch.float32)
        if chosen.ndim == 3:
            chosen = chosen[:, None]
        if chosen.shape[-1] != image_size or chosen.shape[-2] != image_size:
            # Nearest-neighbour resizing keeps masks binary when the model input is resized.
            chosen = F.interpolate(chosen, size=(image_size, image_size), mode="nearest")
        return chosen.to(torch.bool).numpy()

    def _mosaics(
        self,
        datamodule: Any,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        positions: Tensor,
        device: torch.device,
    ) -> tuple[FocusMosaics | None, str | None]:
        """Build the Focus mosaics of this shard; planned over the whole subset so ranks agree."""
        if "Focus" not in self.metrics:
            return None, None
        try:
            sources, flags = plan_focus_mosaics(labels.numpy(), indices.numpy(), self.seed)
        except ValueError as err:
            rank_zero_warn(f"Quantus: Focus is skipped because no mosaic can be built: {err}")
            return None, str(err)

        rows = positions.numpy()
        sources, flags = sources[rows], flags[rows]
        # Preprocess only the images on the tiles, at the model input size, then tile them.
        unique, local_sources = np.unique(sources, return_inverse=True)
        tiles = self._inputs(datamodule, images[torch.as_tensor(unique)], device).cpu().numpy()
        mosaic_images = tile_mosaics(tiles, local_sources.reshape(sources.shape))
        return (
            FocusMosaics(
                images=mosaic_images.astype(np.float32, copy=False),
                targets=labels[indices[positions]].numpy().astype(np.int64),
                positions=flags,
                sources=sources,
            ),
            None,
        )

    def _method_options(self, method: str, datamodule: Any) -> dict[str, Any]:
        options = dict(self.explain_options.get(method, {}))
        if method == "ig" and options.get("baseline") in ("black", "white"):
            options["preprocess"] = datamodule.preprocess
        return options

    def _settings(self, trainer: pl.Trainer, datamodule: Any, count: int) -> dict[str, Any]:
        return {
            "dataset": getattr(datamodule, "dataset_name", None),
            "image_size": getattr(datamodule, "image_size", None),
            "num_classes": int(datamodule.num_classes),
            "checkpoint": getattr(trainer, "ckpt_path", None),
            "split": "test",
            "methods": list(self.methods),
            "metrics": list(self.metrics),
            "subset": self.subset,
            "subset_size": self.subset_size,
            "evaluated_samples": count,
            "seed": self.seed,
            "target": self.target,
            "layer": self.layer,
            "batch_size": self.batch_size,
            "explain_options": self.explain_options,
            "metric_params": self.metric_params,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "world_size": trainer.world_size,
        }


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str) or not isinstance(methods, Sequence) or not methods:
        raise ValueError(f"Invalid methods={methods!r}. Expected a non-empty list from: {', '.join(METHODS)}.")
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise ValueError(
            f"Unknown method(s) {', '.join(map(repr, unknown))} in methods. Expected: {', '.join(METHODS)}."
        )
    return list(dict.fromkeys(methods))


def _merge_explain_options(
    methods: Sequence[str], overrides: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Merge user options over the defaults and check them against each method's options."""
    overrides = dict(overrides or {})
    unknown = [name for name in overrides if name not in METHODS]
    if unknown:
        raise ValueError(
            f"Invalid explain_options: unknown method(s) {', '.join(map(repr, unknown))}. "
            f"Expected keys from: {', '.join(METHODS)}."
        )
    merged: dict[str, dict[str, Any]] = {}
    for method in methods:
        options = {**DEFAULT_EXPLAIN_OPTIONS.get(method, {}), **dict(overrides.get(method) or {})}
        validate_options(method, options)
        merged[method] = options
    return merged


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid {name}={value!r}. Expected an integer >= 1.")


def _explained_model(pl_module: pl.LightningModule) -> nn.Module:
    model = getattr(pl_module, "model", None)
    if not isinstance(model, nn.Module):
        raise MisconfigurationException(
            f"QuantusCallback evaluates `pl_module.model`, but {type(pl_module).__name__} has no "
            "nn.Module attribute `model`. Store the backbone as `self.model`."
        )
    return model


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _check_datamodule(trainer: pl.Trainer) -> Any:
    datamodule = getattr(trainer, "datamodule", None)
    missing = [name for name in DATAMODULE_CONTRACT if not hasattr(datamodule, name)]
    if datamodule is None or missing:
        found = type(datamodule).__name__ if datamodule is not None else "no datamodule"
        raise MisconfigurationException(
            f"QuantusCallback needs a datamodule with {', '.join(DATAMODULE_CONTRACT)}; got {found}"
            + (f" without {', '.join(missing)}" if datamodule is not None else "")
            + ". Pass a MedMNISTDataModule (or one with these members) to the Trainer."
        )
    return datamodule


def _gather(local: Any, world_size: int) -> list[Any]:
    """Collect ``local`` from every rank (a list on every rank); a one-element list without DDP."""
    if world_size < 2 or not (dist.is_available() and dist.is_initialized()):
        return [local]
    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, local)
    return parts


def _log_to_tensorboard(trainer: pl.Trainer, report: EvaluationReport) -> None:
    for logger in trainer.loggers:
        if not isinstance(logger, TensorBoardLogger):
            continue
        for row in report.summary:
            if np.isfinite(row["mean"]):
                tag = f"quantus/{row['property']}/{row['metric']}/{row['method']}"
                logger.experiment.add_scalar(tag, row["mean"], global_step=trainer.global_step)
        logger.experiment.add_figure("quantus/radar", report.figure, global_step=trainer.global_step, close=False)
        logger.experiment.flush()
