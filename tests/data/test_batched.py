"""Batch-wise fetching from in-memory tensors, alone, in the datamodule and under DDP."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from medxai.data import MedMNISTDataModule
from medxai.data.batched import BatchedTensorDataset, collate_batched
from medxai.module import MedMNISTClassifier


def write_id_npz(path: Path, counts: tuple[int, int, int]) -> Path:
    """Write a BreastMNIST-format npz whose images carry their own index in two pixels.

    Pixel (0, 0) stores ``index % 256`` and pixel (0, 1) stores ``index // 256``, so a model can
    read back which samples it received after normalisation.
    """
    arrays = {}
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "val", "test"), counts):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(count) % 256
        images[:, 0, 1] = np.arange(count) // 256
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = (np.arange(count) % 2).astype(np.uint8)[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


class SampleRecorder(pl.LightningModule):
    """Record the sample indices each rank receives in each stage and write them to JSON.

    Defined at module level so that ``ddp_spawn`` can pickle it.
    """

    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.weight = nn.Parameter(torch.ones(1))
        self.seen: dict[str, list[list[int]]] = {"train": [], "val": [], "test": []}

    def _record(self, stage: str, images: Tensor) -> None:
        datamodule = self.trainer.datamodule  # type: ignore[attr-defined]
        # Undo the standardisation of the first channel to read the two index pixels.
        pixels = (images[:, 0, 0, :2] * datamodule.std[0] + datamodule.mean[0]) * 255
        pixels = pixels.round().long()
        indices = (pixels[:, 0] + 256 * pixels[:, 1]).tolist()
        epoch = 0 if stage == "test" else self.current_epoch
        while len(self.seen[stage]) <= epoch:
            self.seen[stage].append([])
        self.seen[stage][epoch].extend(indices)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        self._record("train", batch[0])
        return (self.weight * batch[0].mean()).sum()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._record("val", batch[0])

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._record("test", batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_fit_end(self) -> None:
        self._write("fit")

    def on_test_end(self) -> None:
        self._write("test")

    def _write(self, run: str) -> None:
        path = Path(self.out_dir) / f"{run}_rank{self.global_rank}.json"
        path.write_text(json.dumps(self.seen))


def test_getitems_matches_stacked_samples():
    images = torch.arange(5 * 2 * 3 * 3, dtype=torch.uint8).reshape(5, 2, 3, 3)
    labels = torch.tensor([4, 3, 2, 1, 0])
    dataset = BatchedTensorDataset(images, labels)

    batch_images, batch_labels = dataset.__getitems__([3, 0, 3])

    assert torch.equal(batch_images, torch.stack([images[3], images[0], images[3]]))
    assert torch.equal(batch_labels, torch.tensor([1, 4, 1]))
    assert batch_images.dtype == torch.uint8
    assert len(dataset[2]) == 2
    assert torch.equal(dataset[2][0], images[2])


def test_loader_yields_same_batches_as_tensor_dataset():
    images = torch.randint(0, 256, (23, 1, 4, 4), dtype=torch.uint8)
    labels = torch.arange(23)

    def batches(dataset: TensorDataset, collate_fn: object) -> list[tuple[Tensor, Tensor]]:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(3))
        loader = DataLoader(dataset, batch_size=5, sampler=sampler, drop_last=False, collate_fn=collate_fn)
        return list(loader)

    reference = batches(TensorDataset(images, labels), None)
    batched = batches(BatchedTensorDataset(images, labels), collate_batched)

    assert len(batched) == len(reference) == 5
    for (got_images, got_labels), (want_images, want_labels) in zip(batched, reference):
        assert torch.equal(got_images, want_images)
        assert torch.equal(got_labels, want_labels)


def test_loader_with_worker_process_matches():
    images = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    dataset = BatchedTensorDataset(images, torch.arange(20))

    def labels(num_workers: int) -> list[list[int]]:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(5))
        loader = DataLoader(dataset, batch_size=6, sampler=sampler, num_workers=num_workers, collate_fn=collate_batched)
        return [batch[1].tolist() for batch in loader]

    assert labels(num_workers=1) == labels(num_workers=0)


def test_collate_batched_passes_single_samples():
    dataset = BatchedTensorDataset(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 2]))
    loader = DataLoader(dataset, batch_size=None, collate_fn=collate_batched)

    labels = [sample[1].item() for sample in loader]

    assert labels == [0, 1, 2]


def test_datamodule_train_epoch_sees_each_sample_once(tmp_path: Path):
    write_id_npz(tmp_path / "breastmnist.npz", counts=(26, 9, 7))
    dm = MedMNISTDataModule("breastmnist", root=str(tmp_path), check_md5=False, batch_size=4)
    dm.setup()
    loader = dm.train_dataloader()

    assert isinstance(loader.dataset, BatchedTensorDataset)
    batches = list(loader)
    ids = torch.cat([images[:, 0, 0, 0].long() for images, _ in batches]).tolist()

    assert len(batches) == 6  # 26 samples in batches of 4, the incomplete batch dropped
    assert all(images.dtype == torch.uint8 and images.shape == (4, 1, 28, 28) for images, _ in batches)
    assert len(set(ids)) == 24
    assert torch.equal(torch.cat([labels for _, labels in batches]), torch.tensor(ids) % 2)


def test_datamodule_eval_batches_in_file_order(tmp_path: Path):
    write_id_npz(tmp_path / "breastmnist.npz", counts=(26, 9, 7))
    dm = MedMNISTDataModule("breastmnist", root=str(tmp_path), check_md5=False, batch_size=4)
    dm.setup()

    batches = list(dm.val_dataloader())

    assert [len(labels) for _, labels in batches] == [4, 4, 1]
    assert torch.cat([images[:, 0, 0, 0] for images, _ in batches]).tolist() == list(range(9))


def test_predict_returns_every_test_sample(fake_root: Path, tmp_path: Path):
    dm = MedMNISTDataModule("breastmnist", root=str(fake_root), check_md5=False, batch_size=5)
    module = MedMNISTClassifier(dataset="breastmnist")
    trainer = pl.Trainer(
        default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False
    )

    predictions = trainer.predict(module, datamodule=dm)

    labels = torch.cat([batch["label"] for batch in predictions])
    assert torch.equal(labels, dm.split_arrays("test")[1])


@pytest.mark.slow
def test_ddp_ranks_share_each_split_without_repeats(tmp_path: Path):
    write_id_npz(tmp_path / "data" / "breastmnist.npz", counts=(24, 13, 11))
    datamodule = MedMNISTDataModule("breastmnist", root=str(tmp_path / "data"), check_md5=False, batch_size=4)
    module = SampleRecorder(str(tmp_path))
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )

    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule)

    fit = [json.loads((tmp_path / f"fit_rank{rank}.json").read_text()) for rank in (0, 1)]
    test = [json.loads((tmp_path / f"test_rank{rank}.json").read_text()) for rank in (0, 1)]
    for epoch in range(2):
        train_ids = fit[0]["train"][epoch] + fit[1]["train"][epoch]
        assert sorted(train_ids) == list(range(24)), f"train epoch {epoch}"
        val_ids = fit[0]["val"][epoch] + fit[1]["val"][epoch]
        assert sorted(val_ids) == list(range(13)), f"val epoch {epoch}"
    assert fit[0]["train"][0] != fit[0]["train"][1], "train order is not reshuffled per epoch"
    test_ids = test[0]["test"][0] + test[1]["test"][0]
    assert sorted(test_ids) == list(range(11))
