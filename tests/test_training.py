"""Short in-process fits for each dataset kind, with a real Trainer on tiny files."""

from pathlib import Path

import lightning.pytorch as pl
import pytest

from medxai.data import MedMNISTDataModule
from medxai.module import MedMNISTClassifier


def fit_and_test(dm: MedMNISTDataModule, tmp_path: Path, **model_args) -> tuple[MedMNISTClassifier, dict]:
    pl.seed_everything(0)
    model = MedMNISTClassifier(
        num_classes=dm.num_classes,
        in_channels=dm.in_channels,
        image_size=dm.image_size,
        task=dm.task,
        class_names=dm.class_names,
        dataset=dm.dataset_name,
        **model_args,
    )
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=dm)
    return model, trainer.test(model, datamodule=dm, verbose=False)[0]


@pytest.mark.parametrize("flag", ["bloodmnist", "retinamnist", "breastmnist"])
def test_fit_and_test_each_dataset(fake_root: Path, tmp_path: Path, flag: str):
    dm = MedMNISTDataModule(flag, root=str(fake_root), check_md5=False, batch_size=8)
    model, results = fit_and_test(dm, tmp_path, class_weights="balanced", label_smoothing=0.1)
    assert set(results) >= {"test/acc", "test/auc", "test/f1_macro"}
    assert model.test_results["num_samples"] == 12
    assert ("test/qwk" in results) == (flag == "retinamnist")


def test_focal_loss_onecycle_and_tta(fake_root: Path, tmp_path: Path):
    dm = MedMNISTDataModule("breastmnist", root=str(fake_root), check_md5=False, batch_size=8)
    _, results = fit_and_test(dm, tmp_path, loss="focal", lr_schedule="onecycle", tta=True)
    assert 0.0 <= results["test/auc"] <= 1.0


def test_resize_to_64_uses_small_stem(fake_root: Path, tmp_path: Path):
    dm = MedMNISTDataModule("retinamnist", root=str(fake_root), check_md5=False, batch_size=8, resize=64)
    model, _ = fit_and_test(dm, tmp_path)
    assert model.hparams["image_size"] == 64
    assert model.model.conv1.kernel_size == (3, 3)


def test_invalid_module_settings():
    with pytest.raises(ValueError, match="Invalid loss 'hinge'. Expected one of cross_entropy, focal"):
        MedMNISTClassifier(loss="hinge")
    with pytest.raises(ValueError, match="Invalid lr_schedule 'step'"):
        MedMNISTClassifier(lr_schedule="step")
    with pytest.raises(ValueError, match="Invalid class_weights 'auto'"):
        MedMNISTClassifier(class_weights="auto")
