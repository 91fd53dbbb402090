"""Checks on the official BreastMNIST and RetinaMNIST files (28 px)."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from medxai.data import MedMNISTDataModule
from medxai.module import MedMNISTClassifier

pytestmark = pytest.mark.real_data


@pytest.mark.parametrize(
    ("flag", "counts", "channels", "classes"),
    [("breastmnist", (546, 78, 156), 1, 2), ("retinamnist", (1080, 120, 400), 3, 5)],
)
def test_official_files_load_with_md5(real_root: Path, flag: str, counts: tuple[int, int, int], channels: int, classes: int):
    dm = MedMNISTDataModule(flag, root=str(real_root))
    dm.setup()
    for split, count in zip(("train", "val", "test"), counts):
        images, labels = dm.split_arrays(split)
        assert images.shape == (count, channels, 28, 28)
        assert int(labels.max()) == classes - 1
    assert dm.class_counts == torch.bincount(dm.split_arrays("train")[1]).tolist()


def test_breastmnist_short_fit_and_test(real_root: Path, tmp_path: Path):
    pl.seed_everything(0)
    dm = MedMNISTDataModule("breastmnist", root=str(real_root), batch_size=64)
    model = MedMNISTClassifier(num_classes=2, in_channels=1, task="binary-class", dataset="breastmnist")
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=4,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=dm)
    results = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert 0.0 <= results["test/auc"] <= 1.0
    assert model.test_results["num_samples"] == 156
    assert (Path(trainer.log_dir) / "test_metrics.json").is_file()
