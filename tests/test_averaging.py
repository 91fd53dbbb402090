"""Tests for medxai.averaging.EMAWeightAveraging with a real Trainer on fake BreastMNIST."""

from __future__ import annotations

import threading
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from medxai.averaging import EMAWeightAveraging
from medxai.data import MedMNISTDataModule
from medxai.module import MedMNISTClassifier

WEIGHT = "model.conv1.weight"


def _fit(root: Path, tmp_path: Path, decay: float) -> tuple[pl.Trainer, MedMNISTClassifier, ModelCheckpoint]:
    pl.seed_everything(0)
    datamodule = MedMNISTDataModule("breastmnist", root=str(root), check_md5=False, batch_size=8)
    model = MedMNISTClassifier(num_classes=2, in_channels=1, task="binary-class")
    # Without a monitor the checkpoint contains the last epoch, so a resumed fit has nothing left to train.
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt")
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[EMAWeightAveraging(decay=decay), checkpoint],
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=datamodule)
    return trainer, model, checkpoint


def test_test_after_fit_uses_averaged_weights(fake_root: Path, tmp_path: Path):
    trainer, model, checkpoint = _fit(fake_root, tmp_path, decay=0.5)
    trainer.test(model, datamodule=trainer.datamodule, ckpt_path=checkpoint.best_model_path, verbose=False)

    saved = torch.load(checkpoint.best_model_path, weights_only=False)
    averaged, raw = saved["state_dict"][WEIGHT], saved["current_model_state"][WEIGHT]
    assert not torch.equal(averaged, raw)
    assert torch.equal(model.state_dict()[WEIGHT], averaged)


def test_resumed_fit_restores_raw_weights(fake_root: Path, tmp_path: Path):
    trainer, model, checkpoint = _fit(fake_root, tmp_path, decay=0.5)
    saved = torch.load(checkpoint.best_model_path, weights_only=False)
    resumed = pl.Trainer(
        max_epochs=2,
        callbacks=[EMAWeightAveraging(decay=0.5)],
        default_root_dir=tmp_path / "resumed",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    # The checkpoint has reached max_epochs, so fit only restores it and stops.
    resumed.fit(model, datamodule=trainer.datamodule, ckpt_path=checkpoint.best_model_path)
    assert torch.equal(model.state_dict()[WEIGHT], saved["current_model_state"][WEIGHT])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"decay": 1.0}, r"Invalid EMA decay=1.0"), ({"update_every_n_steps": 0}, r"Invalid update_every_n_steps=0")],
)
def test_invalid_arguments(kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        EMAWeightAveraging(**kwargs)


def test_average_copies_model_with_uncopyable_attributes(fake_root: Path, tmp_path: Path):
    # Under DDP the Trainer, jsonargparse's optimizer factory and the bound forward hold locks.
    model = MedMNISTClassifier(num_classes=2, in_channels=1, task="binary-class")
    model.lock = threading.Lock()
    callback = EMAWeightAveraging(decay=0.5)
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[callback],
        default_root_dir=tmp_path,
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
    )
    datamodule = MedMNISTDataModule("breastmnist", root=str(fake_root), check_md5=False, batch_size=8)
    trainer.fit(model, datamodule=datamodule)

    assert isinstance(model.lock, type(threading.Lock()))
    assert model.trainer is trainer
    averaged = callback._average_model.module
    assert not hasattr(averaged, "lock")
    assert averaged._trainer is None
    # fit ends by loading the average into the model, so both hold the same weights.
    assert torch.equal(averaged.state_dict()[WEIGHT], model.state_dict()[WEIGHT])
