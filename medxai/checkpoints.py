"""Checkpoint helpers: reading and checking checkpoints, finding the one to resume, and the RNG
states saved with them."""

from __future__ import annotations

import logging
import random
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path, weights_only: bool = True) -> dict[str, Any]:
    """Open a Lightning checkpoint memory-mapped, so that its tensors are not read until used.

    Args:
        path: The ``.ckpt`` file.
        weights_only: Load with ``torch.load(weights_only=True)``, which cannot run code. Pass
            ``False`` only for a file from a trusted source that stores other Python objects.

    Returns:
        The checkpoint dictionary, with a ``"state_dict"`` entry.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a readable Lightning checkpoint.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"Checkpoint not found: {file}. Pass the path of a .ckpt file, e.g. "
            "lightning_logs/version_0/checkpoints/last.ckpt."
        )
    if not zipfile.is_zipfile(file):
        raise ValueError(
            f"{file} is not a complete PyTorch checkpoint: torch.save writes a zip archive, and this "
            "file is not one (it may be cut short, or another kind of file). Pass the path of a .ckpt "
            "file that Lightning wrote."
        )
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=weights_only, mmap=True)
    # A damaged or foreign file can fail in many ways inside the unpickler (KeyError, TypeError,
    # UnpicklingError, ...), and each should end in the one-line message below.
    except Exception as err:  # noqa: BLE001
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        reason = f"{type(err).__name__}: {message}" if message else type(err).__name__
        if weights_only and message.startswith("Weights only load failed"):
            # PyTorch's message continues with several lines of advice about unsafe loading, and
            # names the first class it rejected as "GLOBAL module.Class".
            rejected_class = re.search(r"GLOBAL ([\w.]+)", str(err))
            stored = f" ({rejected_class.group(1)})" if rejected_class else ""
            raise ValueError(
                f"Cannot read checkpoint {file}: Weights only load failed, so it is not a complete Lightning "
                f".ckpt file or it stores Python objects besides tensors{stored}. Pass --weights_only=false "
                "only for a file from a source you trust."
            ) from err
        raise ValueError(
            f"Cannot read checkpoint {file}: {reason}. Is it a complete Lightning .ckpt file?"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{file} is not a Lightning checkpoint (no 'state_dict' entry).")
    return checkpoint


def read_hyperparameters(path: str | Path, weights_only: bool = True) -> dict[str, Any]:
    """Return the model hyperparameters stored in a Lightning checkpoint.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a readable Lightning checkpoint.
    """
    return dict(load_checkpoint(path, weights_only).get("hyper_parameters", {}))


def trained_epochs(path: str | Path, weights_only: bool = True) -> int | None:
    """Return how many training epochs a checkpoint has finished, or ``None`` if it does not record them.

    Lightning counts an epoch as processed once its training batches are done, before the
    checkpoint that ends it is written, so this is the epoch count a resumed fit starts from.
    """
    checkpoint = load_checkpoint(path, weights_only)
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return None


def check_checkpoint_matches(ckpt_path: str | Path | None, datamodule: Any, weights_only: bool = True) -> None:
    """Raise if a checkpoint was trained for another number of classes or channels.

    Args:
        ckpt_path: A checkpoint file, or ``None``, ``"best"``, ``"last"`` (nothing to check).
        datamodule: A :class:`~medxai.data.MedMNISTDataModule`.
        weights_only: Passed to :func:`load_checkpoint`.

    Raises:
        ValueError: On a ``num_classes`` or ``in_channels`` mismatch, naming both values.
    """
    if ckpt_path is None or str(ckpt_path) in ("best", "last", "hpc", "registry"):
        return
    hparams = read_hyperparameters(ckpt_path, weights_only)
    for name in ("num_classes", "in_channels"):
        stored, expected = hparams.get(name), getattr(datamodule, name)
        if stored is not None and stored != expected:
            raise ValueError(
                f"Checkpoint {ckpt_path} was trained with {name}={stored} "
                f"(dataset '{hparams.get('dataset')}'), but data.dataset='{datamodule.dataset_name}' "
                f"has {name}={expected}. Use the config of the dataset the checkpoint was trained on."
            )
    if hparams.get("dataset") and hparams["dataset"] != datamodule.dataset_name:
        rank_zero_warn(
            f"Checkpoint {ckpt_path} was trained on '{hparams['dataset']}' and is evaluated on "
            f"'{datamodule.dataset_name}'."
        )


def find_newest_checkpoint(
    trainer: pl.Trainer, filename: str, accept: Callable[[Path], bool] | None = None
) -> tuple[Path | None, Path | None]:
    """Find the newest checkpoint matching ``filename`` that any run under the trainer's log root wrote.

    Lightning resolves ``ckpt_path="last"`` in the current run's checkpoint folder only, and
    every start of ``medxai fit`` opens a new, empty ``version_N`` folder. This searches the
    ``checkpoints/`` folder of every run of the first logger (``<root_dir>/*/checkpoints/``),
    or ``<default_root_dir>/checkpoints/`` when there is no logger.

    Args:
        trainer: The trainer of the run about to start; nothing has been written yet.
        filename: File name or glob pattern of the checkpoint, e.g. ``last.ckpt`` or ``best-*.ckpt``.
        accept: Optional test of a match. Matches are tried from the newest to the oldest, and
            those it rejects are passed over.

    Returns:
        The most recently modified accepted match (``None`` if there is none) and the folder searched.
        For another logger type than TensorBoard or CSV, ``(None, None)``.
    """
    logger = trainer.logger
    if logger is None:
        folder = Path(trainer.default_root_dir) / "checkpoints"
        candidates = list(folder.glob(filename))
    elif isinstance(logger, (TensorBoardLogger, CSVLogger)):
        folder = Path(logger.root_dir)
        candidates = list(folder.glob(f"*/checkpoints/{filename}"))
    else:
        return None, None
    found = sorted((path for path in candidates if path.is_file()), key=lambda path: path.stat().st_mtime_ns)
    for path in reversed(found):
        if accept is None or accept(path):
            return path, folder
    return None, folder


def continue_run_folder(trainer: pl.Trainer, checkpoint: Path) -> Path | None:
    """Make the trainer's logger write into the run folder that contains ``checkpoint``.

    Call before fit starts: the logger must not have created its folder yet. Without a
    logger the checkpoints already go to one fixed folder, so nothing changes.

    Args:
        trainer: The trainer about to resume.
        checkpoint: ``<root_dir>/<run>/checkpoints/<file>`` as found by :func:`find_newest_checkpoint`.

    Returns:
        The run folder now used, or ``None`` without a logger.
    """
    logger = trainer.logger
    if not isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return None
    run_dir = checkpoint.parent.parent
    match = re.fullmatch(r"version_(\d+)", run_dir.name)
    # Both loggers resolve their version lazily from `_version`. Lightning 2.6 has no public
    # setter, and a new logger would drop the user's other logger settings.
    logger._version = int(match.group(1)) if match else run_dir.name
    return run_dir


def collect_rng_states() -> dict[str, Any]:
    """Return the states of Python's, NumPy's and torch's global random number generators.

    These decide the shuffling order and the augmentation of the next epoch. Every value is
    a plain type or a CPU tensor (NumPy's state array becomes a list of ints), so a checkpoint
    that contains them loads with ``torch.load(weights_only=True)``.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [str(kind), keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the global random number generators to states from :func:`collect_rng_states`."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"].cpu())
    cuda_states = states.get("cuda")
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state.cpu() for state in cuda_states])
