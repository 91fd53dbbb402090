"""Checks that ``medxai`` runs before a fit or test writes anything.

Each raises with a one-line message that names the option to change, so that a bad setting
fails before the logger creates a run folder instead of part-way through a run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medxai.checkpoints import trained_epochs


def check_epochs_left(ckpt_path: str | None, trainer: Any, weights_only: bool) -> None:
    """Reject resuming a checkpoint that has already trained ``trainer.max_epochs`` epochs.

    Lightning would restore it, train nothing, and then test and explain it again, writing
    over the results and the config of the run it came from.
    """
    if not ckpt_path or not Path(ckpt_path).is_file() or trainer.max_epochs in (None, -1):
        return
    done = trained_epochs(ckpt_path, weights_only)
    if done is not None and done >= trainer.max_epochs:
        raise ValueError(
            f"Checkpoint {ckpt_path} has already trained {done} epoch(s), all of --trainer.max_epochs="
            f"{trainer.max_epochs}, so there is nothing left to train, and resuming would overwrite the "
            "results of its run. To train longer, start a new run with a larger --trainer.max_epochs "
            "(a run's LR schedule is fixed when it starts). To evaluate it, run "
            f"'medxai test --config CONFIG --ckpt_path {ckpt_path}'."
        )


def check_writable(trainer: Any) -> None:
    """Raise OSError if the run's output folders cannot be created or written. Creates nothing."""
    folders = [Path(trainer.default_root_dir)]
    folders += [Path(logger.save_dir) for logger in trainer.loggers if logger.save_dir]
    for folder in folders:
        existing = folder.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
            continue
        is_file = existing.exists() and not existing.is_dir()
        problem = "is a file, not a folder" if is_file else "is not writable"
        raise OSError(
            f"Cannot write run outputs to '{folder}': '{existing}' {problem}. "
            "Choose a writable folder with --trainer.default_root_dir."
        )


def check_target_layers(trainer: Any, model: Any, groups: dict[type, str]) -> None:
    """Raise ValueError if a callback's target layer is missing from the model.

    The callbacks check again in their ``setup``, but only after the logger has created the run folder.

    Args:
        trainer: The trainer about to run, with its callbacks.
        model: The LightningModule, whose ``model`` attribute is the explained network.
        groups: ``{callback class: CLI group name}`` of the callbacks that take a ``layer``.
    """
    from medxai.explain.layers import resolve_layer
    from medxai.explain.methods import get_method

    for callback in trainer.callbacks:
        group = groups.get(type(callback))
        methods = getattr(callback, "methods", ())
        if group is None or not any(get_method(name).uses_layer for name in methods):
            continue
        try:
            resolve_layer(model.model, callback.layer)
        except ValueError as err:
            raise ValueError(f"Invalid --{group}.layer: {err}") from err
