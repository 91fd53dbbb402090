"""The classifier's fast paths: no host sync per training step, and channels_last memory format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from medxai.data import MedMNISTDataModule
from medxai.explain import explain
from medxai.module import MedMNISTClassifier
from tests.conftest import write_fake_npz


class ScalarReadCounter(TorchDispatchMode):
    """Count reads of a tensor value into Python (``.item()``, ``float(t)``, ``bool(t)``).

    Each such read runs ``aten._local_scalar_dense``, which on a GPU waits for all queued work.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class CountScalarReads(pl.Callback):
    """Count scalar reads from the start to the end of training."""

    def __init__(self) -> None:
        self.counter = ScalarReadCounter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.counter.__enter__()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.counter.__exit__(None, None, None)


def count_scalar_reads(tmp_path: Path, train_samples: int) -> int:
    write_fake_npz(tmp_path / "breastmnist.npz", "breastmnist", counts=(train_samples, 8, 8))
    datamodule = MedMNISTDataModule("breastmnist", root=str(tmp_path), check_md5=False, batch_size=4)
    # SGD keeps no step counter. AdamW reads its step counter, a CPU tensor, with .item() at
    # every step, which is no device sync but would be counted here.
    module = MedMNISTClassifier(dataset="breastmnist", optimizer=lambda params: torch.optim.SGD(params, lr=0.01))
    callback = CountScalarReads()
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_val_batches=0,
        log_every_n_steps=1000,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return callback.counter.count


def test_training_steps_read_no_scalars(tmp_path: Path):
    # The progress bar is on, as users run it. Reads at epoch start and end are allowed, but
    # reads per step would make the count grow with the number of steps.
    four_steps = count_scalar_reads(tmp_path / "four", train_samples=16)
    twelve_steps = count_scalar_reads(tmp_path / "twelve", train_samples=48)

    assert twelve_steps == four_steps
    assert four_steps <= 8


def test_channels_last_keeps_outputs_and_checkpoints():
    torch.manual_seed(0)
    fast = MedMNISTClassifier(in_channels=3, num_classes=4, channels_last=True).eval()
    plain = MedMNISTClassifier(in_channels=3, num_classes=4, channels_last=False).eval()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(6, 3, 28, 28)

    assert fast.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.model.conv1.weight.is_contiguous()
    assert plain.model.layer1[0].conv1.weight.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)


def test_channels_last_keeps_explanations():
    torch.manual_seed(0)
    fast = MedMNISTClassifier(in_channels=1, num_classes=2, channels_last=True).eval()
    plain = MedMNISTClassifier(in_channels=1, num_classes=2, channels_last=False).eval()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(4, 1, 28, 28)
    target = torch.tensor([0, 1, 1, 0])

    for method in ("gradcam", "saliency"):
        fast_maps = explain(fast.model, x, target, method=method)
        plain_maps = explain(plain.model, x, target, method=method)
        torch.testing.assert_close(fast_maps, plain_maps, rtol=1e-3, atol=1e-5)


def test_channels_last_training_step_runs(tmp_path: Path):
    write_fake_npz(tmp_path / "breastmnist.npz", "breastmnist", counts=(8, 4, 4))
    datamodule = MedMNISTDataModule("breastmnist", root=str(tmp_path), check_md5=False, batch_size=4)
    module = MedMNISTClassifier(dataset="breastmnist", channels_last=True)
    trainer = pl.Trainer(
        default_root_dir=tmp_path, max_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )

    trainer.fit(module, datamodule=datamodule)

    assert trainer.global_step == 2
    assert module.model.layer4[1].conv2.weight.is_contiguous(memory_format=torch.channels_last)
