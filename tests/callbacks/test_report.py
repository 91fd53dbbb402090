"""ReportCallback in real Trainer runs on a tiny classifier, with TensorBoard logging to tmp_path."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from callbacks.report import ReportCallback
from medxai.io import write_json

NUM_CLASSES = 3
LATE_FAILURE = "map is constant <written late>"


class TinyClassifier(pl.LightningModule):
    """Linear classifier that logs like MedMNISTClassifier and writes test_metrics.json."""

    def __init__(self) -> None:
        super().__init__()
        self.model = torch.nn.Linear(4, NUM_CLASSES)
        self.test_predictions: list[torch.Tensor] = []
        self.test_labels: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val/loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.test_predictions.append(self(x).argmax(1))
        self.test_labels.append(y)

    def on_test_epoch_end(self) -> None:
        predictions = torch.cat(self.test_predictions)
        labels = torch.cat(self.test_labels)
        matrix = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64)
        for label, prediction in zip(labels.tolist(), predictions.tolist()):
            matrix[label, prediction] += 1
        accuracy = float((predictions == labels).float().mean())
        self.log("test/acc", accuracy)
        metrics = {
            "dataset": "tiny",
            "task": "multi-class",
            "class_names": ["a", "b", "c"],
            "metrics": {"acc": accuracy},
            "per_class": [],
            "confusion_matrix": matrix.tolist(),
        }
        if self.trainer.is_global_zero:
            write_json(Path(self.trainer.log_dir) / "test_metrics.json", metrics)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class LateExplanationWriter(pl.Callback):
    """Writes explanations.json at on_test_end, as the explanation callback does."""

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = {
            "methods": ["saliency"],
            "samples": [
                {
                    "index": 0,
                    "true_label": 1,
                    "predicted_label": 1,
                    "methods": {"saliency": {"status": "failed", "reason": LATE_FAILURE}},
                }
            ],
        }
        write_json(Path(trainer.log_dir) / "explanations" / "explanations.json", record)


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(24, 4, generator=generator)
    y = torch.arange(24) % NUM_CLASSES
    return DataLoader(TensorDataset(x, y), batch_size=8)


def make_trainer(tmp_path: Path, callbacks: list[pl.Callback]) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=TensorBoardLogger(save_dir=tmp_path, name="lightning_logs"),
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def report_text(trainer: pl.Trainer) -> str:
    return (Path(trainer.log_dir) / "report.html").read_text()


def test_report_after_fit_then_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    trainer = make_trainer(tmp_path, [ReportCallback()])
    model = TinyClassifier()

    trainer.fit(model, loader(), loader())
    after_fit = report_text(trainer)
    trainer.test(model, loader())
    after_test = report_text(trainer)

    assert 'alt="Loss curves"' in after_fit
    assert "Missing: test_metrics.json" in after_fit
    assert "Missing: test_metrics.json" not in after_test
    assert 'alt="Confusion matrix"' in after_test
    assert "CPUAccelerator" in after_test
    assert "7 (global seed of the training process)" in after_test


def test_report_listed_first_sees_later_files(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, [ReportCallback(after_fit=False), LateExplanationWriter()])

    trainer.test(TinyClassifier(), loader())

    text = report_text(trainer)
    assert "map is constant &lt;written late&gt;" in text
    assert "Missing: explanations/" not in text


def test_report_listed_last_written_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trainer = make_trainer(tmp_path, [LateExplanationWriter(), ReportCallback(after_fit=False)])

    with caplog.at_level(logging.INFO, logger="medxai.report.builder"):
        trainer.test(TinyClassifier(), loader())

    writes = [record for record in caplog.records if record.getMessage().startswith("Wrote run report")]
    assert len(writes) == 1
    assert "map is constant &lt;written late&gt;" in report_text(trainer)


def test_report_disabled_writes_nothing(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, [ReportCallback(after_fit=False, after_test=False)])
    model = TinyClassifier()

    trainer.fit(model, loader(), loader())
    trainer.test(model, loader())

    assert not (Path(trainer.log_dir) / "report.html").exists()


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_invalid_max_grid_samples(value: object) -> None:
    with pytest.raises(ValueError, match=r"max_grid_samples must be an integer >= 1 .*got"):
        ReportCallback(max_grid_samples=value)  # type: ignore[arg-type]


def test_invalid_flag() -> None:
    with pytest.raises(ValueError, match="after_test must be true or false, got 'yes'"):
        ReportCallback(after_test="yes")  # type: ignore[arg-type]
