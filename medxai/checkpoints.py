"""Checks that a checkpoint fits the data it is about to be evaluated on."""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

log = logging.getLogger(__name__)


def read_hyperparameters(path: str | Path) -> dict[str, Any]:
    """Return the model hyperparameters stored in a Lightning checkpoint.

    The file is opened with ``torch.load(weights_only=True)``, so it cannot run code.

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
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"Cannot read checkpoint {file}: {err}. Is it a complete Lightning .ckpt file?") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{file} is not a Lightning checkpoint (no 'state_dict' entry).")
    return dict(checkpoint.get("hyper_parameters", {}))


def check_checkpoint_matches(ckpt_path: str | Path | None, datamodule: Any) -> None:
    """Raise if a checkpoint was trained for another number of classes or channels.

    Args:
        ckpt_path: A checkpoint file, or ``None``, ``"best"``, ``"last"`` (nothing to check).
        datamodule: A :class:`~medxai.data.MedMNISTDataModule`.

    Raises:
        ValueError: On a ``num_classes`` or ``in_channels`` mismatch, naming both values.
    """
    if ckpt_path is None or str(ckpt_path) in ("best", "last", "hpc", "registry"):
        return
    hparams = read_hyperparameters(ckpt_path)
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
