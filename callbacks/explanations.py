"""Lightning callback that explains a test subset with several attribution methods after testing."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from medxai.explain.baselines import BASELINES
from medxai.explain.layers import resolve_layer
from medxai.explain.methods import METHODS, get_method
from medxai.explain.runner import TARGET_MODES, SubsetResult, explain_images, merge_results
from medxai.explain.subset import select_subset, shard_indices, validate_subset_args
from medxai.explain.writer import write_explanations

log = logging.getLogger(__name__)

#: Datamodule members the callback reads.
DATAMODULE_CONTRACT: tuple[str, ...] = ("split_arrays", "preprocess", "to_display", "class_names")


class ExplanationCallback(Callback):
    """Explain a fixed test subset of the tested model and write overlays, maps and a JSON index.

    The callback acts once testing ends (``on_test_end``); ``medxai fit`` tests the best
    checkpoint right after training, so this explains the best model. It explains
    ``pl_module.model`` on images read with ``trainer.datamodule.split_arrays("test")``, which
    are preprocessed with ``datamodule.preprocess`` and drawn with ``datamodule.to_display``.

    Outputs go to ``<trainer.log_dir>/explanations/`` (see :mod:`medxai.explain.writer`); the
    summary figure is also logged to each TensorBoard logger as ``explanations/summary``.
    Under DDP every rank explains its share of the subset, the results are gathered and rank
    0 writes the files.

    Args:
        methods: Attribution methods to run, keys of :data:`medxai.explain.METHODS`.
        layer: Target layer of layer methods, a module name relative to ``pl_module.model``.
        target: ``"predicted"``: explain the predicted class; ``"true"``: the true class.
        subset_size: Number of test images to explain (clamped to the split with a warning).
        subset: How to choose them: ``"first"``, ``"random"`` or ``"stratified"`` by class.
        seed: Seed of the random and stratified choices.
        ig_steps: Integration steps of Integrated Gradients.
        ig_baseline: IG baseline: ``"zeros"``, ``"black"``, ``"white"`` or ``"mean"``
            (see :func:`medxai.explain.make_baseline`).
        ig_internal_batch_size: Scaled inputs per IG forward pass; bounds memory. ``None``
            runs all ``batch_size * ig_steps`` scaled inputs of a batch at once.
        batch_size: Images explained per call of a method.
        summary_size: Images (rows) in the summary figure.
        grid_size: Images in each method's grid figure.
        progress: Show a tqdm bar over the batches of each method (rank 0 only).
        enabled: Switch the callback off without removing it from the config.

    Raises:
        ValueError: If a setting is invalid; the message names it and the allowed values.

    Example (YAML for LightningCLI)::

        trainer:
          callbacks:
            - class_path: callbacks.ExplanationCallback
              init_args:
                methods: [gradcam, gradcampp, ig, saliency]
                subset_size: 32
                subset: stratified
    """

    def __init__(
        self,
        methods: Sequence[str] = ("gradcam", "gradcampp", "ig", "saliency"),
        layer: str = "layer4",
        target: str = "predicted",
        subset_size: int = 32,
        subset: str = "stratified",
        seed: int = 42,
        ig_steps: int = 50,
        ig_baseline: str = "zeros",
        ig_internal_batch_size: int | None = 64,
        batch_size: int = 32,
        summary_size: int = 8,
        grid_size: int = 64,
        progress: bool = True,
        enabled: bool = True,
    ) -> None:
        super().__init__()
        self.methods = _check_methods(methods)
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"Invalid layer={layer!r}. Expected a module name such as 'layer4'.")
        if target not in TARGET_MODES:
            raise ValueError(f"Invalid target={target!r}. Expected one of {', '.join(TARGET_MODES)}.")
        validate_subset_args(subset_size, subset)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"Invalid seed={seed!r}. Expected an integer.")
        _check_positive("ig_steps", ig_steps)
        if ig_baseline not in BASELINES:
            raise ValueError(f"Invalid ig_baseline={ig_baseline!r}. Expected one of {', '.join(BASELINES)}.")
        if ig_internal_batch_size is not None:
            _check_positive("ig_internal_batch_size", ig_internal_batch_size)
        _check_positive("batch_size", batch_size)
        _check_positive("summary_size", summary_size)
        _check_positive("grid_size", grid_size)

        self.layer = layer
        self.target = target
        self.subset_size = subset_size
        self.subset = subset
        self.seed = seed
        self.ig_steps = ig_steps
        self.ig_baseline = ig_baseline
        self.ig_internal_batch_size = ig_internal_batch_size
        self.batch_size = batch_size
        self.summary_size = summary_size
        self.grid_size = grid_size
        self.progress = progress
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
        """Explain the test subset once testing has finished."""
        if not self.enabled or trainer.sanity_checking:
            return
        self._explain_test_subset(trainer, pl_module)

    def _explain_test_subset(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = _check_datamodule(trainer)
        model = _explained_model(pl_module)
        images, labels = datamodule.split_arrays("test")
        indices = select_subset(labels, self.subset_size, self.subset, self.seed)
        positions = shard_indices(indices, trainer.global_rank, trainer.world_size)
        rank_zero_info(
            f"Explaining {indices.numel()} test images ({self.subset}, seed {self.seed}) with "
            f"{', '.join(self.methods)}; target: {self.target} class."
        )

        # trainer.log_dir broadcasts from rank 0 under DDP, so every rank must read it.
        out_dir = Path(trainer.log_dir or trainer.default_root_dir) / "explanations"
        started = time.perf_counter()
        local: SubsetResult | BaseException
        try:
            local = self._explain_shard(trainer, pl_module, model, datamodule, images, labels, indices, positions)
        except Exception as err:  # Gather even after an error, so that no rank waits forever.
            local = err
        parts = _gather(local, trainer.world_size)
        errors = [part for part in parts if isinstance(part, BaseException)]
        if errors:
            raise RuntimeError(f"Explaining the test subset failed: {errors[0]}") from errors[0]
        try:
            if trainer.global_rank == 0:
                self._write(trainer, datamodule, images, parts, out_dir, started)
        finally:
            # Every rank leaves together, so none tears down its process group while rank 0 writes.
            trainer.strategy.barrier("explanations_written")

    def _write(
        self,
        trainer: pl.Trainer,
        datamodule: Any,
        images: torch.Tensor,
        parts: list[Any],
        out_dir: Path,
        started: float,
    ) -> None:
        """Merge the ranks' results and write the files, figures and TensorBoard images (rank 0)."""
        result = merge_results([part for part in parts if isinstance(part, SubsetResult)])
        display = datamodule.to_display(images[torch.as_tensor(result.indices)]).float().cpu().numpy()
        summary = write_explanations(
            out_dir, result, display, list(datamodule.class_names), self._settings(datamodule), self.summary_size, self.grid_size
        )
        _log_figure(trainer, summary)
        failed = {name: sum(reason is not None for reason in reasons) for name, reasons in result.failures.items()}
        rank_zero_info(
            f"Wrote explanations of {result.indices.size} images to {out_dir} in "
            f"{time.perf_counter() - started:.1f} s (failed per method: {failed})."
        )

    def _explain_shard(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        model: nn.Module,
        datamodule: Any,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: torch.Tensor,
        positions: torch.Tensor,
    ) -> SubsetResult:
        shard = indices[positions]
        return explain_images(
            model,
            images[shard],
            labels[shard],
            datamodule.preprocess,
            self.methods,
            method_options={"ig": self._ig_options(datamodule)},
            layer=self.layer,
            target=self.target,
            batch_size=self.batch_size,
            progress=self.progress and trainer.global_rank == 0,
            positions=positions,
            indices=shard,
            device=pl_module.device,
            report=rank_zero_info,
        )

    def _ig_options(self, datamodule: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "n_steps": self.ig_steps,
            "baseline": self.ig_baseline,
            "internal_batch_size": self.ig_internal_batch_size,
        }
        if self.ig_baseline in ("black", "white"):
            options["preprocess"] = datamodule.preprocess
        return options

    def _settings(self, datamodule: Any) -> dict[str, Any]:
        return {
            "dataset": getattr(datamodule, "dataset_name", None),
            "split": "test",
            "methods": list(self.methods),
            "layer": self.layer,
            "target": self.target,
            "subset": self.subset,
            "subset_size": self.subset_size,
            "seed": self.seed,
            "ig_steps": self.ig_steps,
            "ig_baseline": self.ig_baseline,
            "ig_internal_batch_size": self.ig_internal_batch_size,
            "batch_size": self.batch_size,
        }


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str) or not isinstance(methods, Sequence) or not methods:
        raise ValueError(f"Invalid methods={methods!r}. Expected a non-empty list from: {', '.join(METHODS)}.")
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method(s) {', '.join(map(repr, unknown))} in methods. Expected: {', '.join(METHODS)}.")
    duplicates = sorted({name for name in methods if list(methods).count(name) > 1})
    if duplicates:
        raise ValueError(f"Invalid methods={list(methods)!r}: {', '.join(duplicates)} listed more than once.")
    return list(methods)


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid {name}={value!r}. Expected an integer >= 1.")


def _explained_model(pl_module: pl.LightningModule) -> nn.Module:
    model = getattr(pl_module, "model", None)
    if not isinstance(model, nn.Module):
        raise MisconfigurationException(
            f"ExplanationCallback explains `pl_module.model`, but {type(pl_module).__name__} has no "
            "nn.Module attribute `model`. Store the backbone as `self.model`."
        )
    return model


def _check_datamodule(trainer: pl.Trainer) -> Any:
    datamodule = getattr(trainer, "datamodule", None)
    # Look properties up on the class, so that checking does not load any data.
    missing = [
        name for name in DATAMODULE_CONTRACT if not (hasattr(type(datamodule), name) or hasattr(datamodule, name))
    ]
    if datamodule is None or missing:
        if datamodule is None:
            found = "the Trainer has no datamodule"
        else:
            found = f"{type(datamodule).__name__} is missing {', '.join(missing)}"
        raise MisconfigurationException(
            f"ExplanationCallback needs a datamodule with {', '.join(DATAMODULE_CONTRACT)}, but {found}. "
            "Pass a MedMNISTDataModule (or one with these members) to the Trainer."
        )
    return datamodule


def _gather(local: Any, world_size: int) -> list[Any]:
    """Collect ``local`` from every rank (a list on every rank); a one-element list without DDP."""
    if world_size < 2 or not (dist.is_available() and dist.is_initialized()):
        return [local]
    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, local)
    return parts


def _log_figure(trainer: pl.Trainer, figure: Any) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure("explanations/summary", figure, global_step=trainer.global_step, close=False)
