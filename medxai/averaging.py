"""Exponential moving average of the weights, tested with the same weights that validation saw."""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMAWeightAveraging):
    """Lightning's EMA callback, with checkpoints evaluated on their averaged weights.

    Lightning's callback (2.6) validates with the averaged weights and saves them as the
    checkpoint's ``state_dict``, keeping the raw weights under ``current_model_state``. When
    ``trainer.test(ckpt_path=...)`` runs in the same process after ``fit``, its
    ``on_load_checkpoint`` loads ``current_model_state`` back into the model, so the test
    scores the raw weights of the epoch that the averaged weights were selected for. This
    subclass restores the raw weights only when fitting resumes, so ``validate``, ``test`` and
    ``predict`` always use the averaged weights, in the same process or in a new one.

    Args:
        decay: Weight of the old average at each update, e.g. 0.99 averages over about the
            last 100 optimizer steps.
        update_every_n_steps: Update the average every this many optimizer steps.
        update_starting_at_step: First optimizer step that updates the average (``None``: 0).
        update_starting_at_epoch: Also update at the end of each epoch from this one on.
        kwargs: Passed to Lightning's ``EMAWeightAveraging`` (``device``, ``use_buffers``).
    """

    def __init__(
        self,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        update_starting_at_epoch: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"Invalid EMA decay={decay}. Expected a value in [0, 1).")
        if update_every_n_steps < 1:
            raise ValueError(f"Invalid update_every_n_steps={update_every_n_steps}. Expected 1 or more.")
        super().__init__(
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
            update_starting_at_epoch=update_starting_at_epoch,
            **kwargs,
        )

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Create the averaged copy of the model from its weights, without the objects around them.

        ``torch.optim.swa_utils.AveragedModel`` deep-copies the module. Under DDP, the attached
        Trainer's strategy, jsonargparse's optimizer factory and the ``forward`` that DDP binds to
        the instance hold thread locks, which cannot be copied. The average needs none of them, so
        they are detached during the copy and put back after it.
        """
        detached = _detach_uncopyable(pl_module)
        try:
            super().setup(trainer, pl_module, stage)
        finally:
            vars(pl_module).update(detached)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Restore the raw weights and the average when fitting resumes; otherwise keep the average."""
        if trainer.state.fn != TrainerFn.FITTING:
            return
        super().on_load_checkpoint(trainer, pl_module, checkpoint)


# nn.Module's own registries, which hold the weights that the average copies.
_MODULE_REGISTRIES = frozenset({"_parameters", "_buffers", "_modules"})


def _detach_uncopyable(module: pl.LightningModule) -> dict[str, Any]:
    """Remove the Trainer and every other instance attribute that ``copy.deepcopy`` rejects.

    Returns:
        The removed attributes by name, to put back with ``vars(module).update(...)``.
    """
    state = vars(module)
    detached = {"_trainer": state.pop("_trainer")} if "_trainer" in state else {}
    for name in [name for name in state if name not in _MODULE_REGISTRIES]:
        try:
            copy.deepcopy(state[name])
        except (TypeError, AttributeError, RuntimeError):
            detached[name] = state.pop(name)
    return detached
