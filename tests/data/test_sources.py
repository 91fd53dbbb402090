from pathlib import Path

import numpy as np
import pytest

from medxai.data import DataError, MedMNISTDataModule
from tests.conftest import write_fake_npz


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DataError, match=r"Unknown dataset 'bloodmnst'.*bloodmnist.*breastmnist.*synthetic"):
        MedMNISTDataModule("bloodmnst")


def test_multilabel_dataset_rejected():
    with pytest.raises(DataError, match="chestmnist.*multi-label"):
        MedMNISTDataModule("chestmnist")


def test_unsupported_size():
    with pytest.raises(DataError, match=r"Unsupported size 32\. MedMNIST files exist at 28, 64, 128, 224"):
        MedMNISTDataModule("breastmnist", size=32)


def test_missing_file_names_file_md5_folder_and_download(tmp_path: Path):
    dm = MedMNISTDataModule("bloodmnist", root=str(tmp_path), size=64)
    with pytest.raises(DataError) as info:
        dm.setup()
    message = str(info.value)
    assert "bloodmnist_64.npz" in message
    assert "2b94928a2ae4916078ca51e05b6b800b" in message
    assert str(tmp_path) in message
    assert "--data.download=true" in message


def test_md5_mismatch_names_both_checksums(fake_root: Path):
    dm = MedMNISTDataModule("breastmnist", root=str(fake_root))
    with pytest.raises(DataError, match=r"MD5 mismatch .* expected the official 750601b1f35ba3300ea97c75c52ff8f6"):
        dm.setup()


def test_truncated_file_is_reported_corrupt(fake_root: Path):
    path = fake_root / "breastmnist.npz"
    path.write_bytes(path.read_bytes()[:500])
    dm = MedMNISTDataModule("breastmnist", root=str(fake_root), check_md5=False)
    with pytest.raises(DataError, match="corrupt or truncated"):
        dm.setup()


def test_missing_keys_are_listed(tmp_path: Path):
    np.savez(tmp_path / "breastmnist.npz", train_images=np.zeros((2, 28, 28), np.uint8))
    dm = MedMNISTDataModule("breastmnist", root=str(tmp_path), check_md5=False)
    with pytest.raises(DataError, match="missing the arrays train_labels, val_images"):
        dm.setup()


def test_labels_out_of_range(tmp_path: Path):
    path = write_fake_npz(tmp_path / "breastmnist.npz", "breastmnist")
    arrays = dict(np.load(path))
    arrays["test_labels"][0] = 7
    np.savez(path, **arrays)
    dm = MedMNISTDataModule("breastmnist", root=str(tmp_path), check_md5=False)
    with pytest.raises(DataError, match=r"test_labels contains 1 value\(s\) outside 0\.\.1 \(first: 7\)"):
        dm.setup()


def test_wrong_image_shape_for_size(tmp_path: Path):
    write_fake_npz(tmp_path / "retinamnist_64.npz", "retinamnist", size=28)
    dm = MedMNISTDataModule("retinamnist", root=str(tmp_path), size=64, check_md5=False)
    with pytest.raises(DataError, match=r"train_images has dtype uint8 and shape \(24, 28, 28, 3\), expected uint8 \(N, 64, 64, 3\)"):
        dm.setup()


def test_pickled_npz_is_rejected(tmp_path: Path):
    arrays = dict(np.load(write_fake_npz(tmp_path / "breastmnist.npz", "breastmnist")))
    arrays["train_labels"] = np.array([object()] * 24, dtype=object)
    np.savez(tmp_path / "breastmnist.npz", **arrays)
    dm = MedMNISTDataModule("breastmnist", root=str(tmp_path), check_md5=False)
    with pytest.raises(DataError, match="corrupt or truncated"):
        dm.setup()


def test_data_root_from_environment(fake_root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEDXAI_DATA_ROOT", str(fake_root))
    dm = MedMNISTDataModule("bloodmnist", check_md5=False)
    assert dm.root == fake_root
    dm.setup()
    assert len(dm.split_arrays("train")[1]) == 24
