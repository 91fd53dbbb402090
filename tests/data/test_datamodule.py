from pathlib import Path

import pytest
import torch

from medxai.data import Augmentation, MedMNISTDataModule


@pytest.mark.parametrize(
    ("flag", "num_classes", "channels", "task"),
    [("bloodmnist", 8, 3, "multi-class"), ("retinamnist", 5, 3, "ordinal-regression"), ("breastmnist", 2, 1, "binary-class")],
)
def test_metadata_and_shapes(fake_root: Path, flag: str, num_classes: int, channels: int, task: str):
    dm = MedMNISTDataModule(flag, root=str(fake_root), check_md5=False)
    assert dm.num_classes == num_classes
    assert dm.in_channels == channels
    assert dm.task == task
    assert len(dm.class_names) == num_classes
    images, labels = dm.split_arrays("test")
    assert images.dtype == torch.uint8
    assert images.shape == (12, channels, 28, 28)
    assert labels.dtype == torch.int64
    assert sum(dm.class_counts) == 24


def test_bloodmnist_class_names_from_info(fake_root: Path):
    dm = MedMNISTDataModule("bloodmnist", root=str(fake_root), check_md5=False)
    assert dm.class_names[0] == "basophil"


def test_preprocess_resizes_and_standardises(fake_root: Path):
    dm = MedMNISTDataModule("retinamnist", root=str(fake_root), check_md5=False, resize=64)
    images, _ = dm.split_arrays("train")
    x = dm.preprocess(images)
    assert x.shape == (24, 3, 64, 64)
    assert x.dtype == torch.float32
    per_channel_mean = x.mean(dim=(0, 2, 3))
    assert torch.allclose(per_channel_mean, torch.zeros(3), atol=0.05)
    shown = dm.to_display(images[:2])
    assert shown.min() >= 0
    assert shown.max() <= 1


def test_batches_are_converted_on_transfer(fake_root: Path):
    dm = MedMNISTDataModule("breastmnist", root=str(fake_root), check_md5=False, batch_size=8)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert batch[0].dtype == torch.uint8
    x, y = dm.on_after_batch_transfer(batch, 0)
    assert x.dtype == torch.float32
    assert x.shape == (8, 1, 28, 28)
    assert torch.equal(y, batch[1])


def test_augmentation_is_seeded_and_keeps_range():
    augment = Augmentation(hflip=0.5, vflip=0.5, degrees=15, translate=0.1, scale=0.1, brightness=0.2, contrast=0.2, saturation=0.2)
    images = torch.rand(6, 3, 28, 28)
    torch.manual_seed(0)
    first = augment(images)
    torch.manual_seed(0)
    second = augment(images)
    assert torch.equal(first, second)
    assert not torch.equal(first, images)
    assert first.min() >= 0
    assert first.max() <= 1


def test_invalid_augmentation_probability():
    with pytest.raises(ValueError, match=r"Invalid augmentation hflip=1.5\. Expected a probability in \[0, 1\]"):
        Augmentation(hflip=1.5)


def test_invalid_batch_size():
    with pytest.raises(ValueError, match="Invalid batch_size=0"):
        MedMNISTDataModule("breastmnist", batch_size=0)
