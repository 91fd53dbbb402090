"""LightningModule that trains and evaluates the adaptive ResNet-18."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from medxai.io import write_json
from medxai.losses import LOSSES, balanced_class_weights, build_loss
from medxai.metrics import build_metrics, per_class_report
from medxai.models import build_resnet18

log = logging.getLogger(__name__)

LR_SCHEDULES: tuple[str, ...] = ("cosine", "onecycle", "constant")
CLASS_WEIGHTS: tuple[str, ...] = ("none", "balanced")
TEST_METRICS_FILE = "test_metrics.json"


class MedMNISTClassifier(pl.LightningModule):
    """Single-label image classifier with MedMNIST's ACC/AUC, macro-F1 and a confusion matrix.

    ``num_classes``, ``in_channels``, ``image_size``, ``task``, ``class_names`` and ``dataset``
    are linked from the datamodule by the CLI, so they are never typed twice.

    Args:
        num_classes: Number of classes ``K``.
        in_channels: 1 or 3.
        image_size: Side length in pixels of the model's input.
        task: medmnist task string (``ordinal-regression`` adds kappa and MAE).
        class_names: Names in label order, stored for reports.
        dataset: Dataset flag, stored so a checkpoint says what it was trained on.
        stem: ResNet stem: ``auto``, ``small`` or ``imagenet``.
        pretrained: Start from torchvision's ImageNet weights.
        loss: ``cross_entropy`` or ``focal``.
        label_smoothing: Label smoothing in [0, 1).
        focal_gamma: Focusing parameter of the focal loss.
        class_weights: ``none`` or ``balanced`` (inverse train-split class frequency).
        optimizer: Optimizer factory; AdamW by default. Set in YAML with ``class_path``.
        lr_schedule: ``cosine`` (per-step decay to 0, with ``warmup_epochs`` of linear warm-up),
            ``onecycle`` or ``constant``.
        warmup_epochs: Epochs of linear warm-up for the cosine schedule.
        tta: Average the probabilities of the image and its horizontal flip at val/test/predict.
        channels_last: Keep weights and inputs in the channels_last (NHWC) memory format. On CPU
            (oneDNN) a training step of ResNet-18 ran 1.1x (28 px) to 1.4x (224 px) faster in
            float32; ``benchmarks/bench_model_options.py`` measures it. Outputs differ from the
            default layout only by float rounding.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 1,
        image_size: int = 28,
        task: str = "binary-class",
        class_names: list[str] | None = None,
        dataset: str | None = None,
        stem: str = "auto",
        pretrained: bool = False,
        loss: str = "cross_entropy",
        label_smoothing: float = 0.0,
        focal_gamma: float = 2.0,
        class_weights: str = "none",
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_schedule: str = "cosine",
        warmup_epochs: int = 0,
        tta: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"Invalid loss '{loss}'. Expected one of {', '.join(LOSSES)}.")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"Invalid lr_schedule '{lr_schedule}'. Expected one of {', '.join(LR_SCHEDULES)}.")
        if class_weights not in CLASS_WEIGHTS:
            raise ValueError(f"Invalid class_weights '{class_weights}'. Expected one of {', '.join(CLASS_WEIGHTS)}.")
        if warmup_epochs < 0:
            raise ValueError(f"Invalid warmup_epochs={warmup_epochs}. Expected 0 or more.")
        self.save_hyperparameters(ignore=["optimizer"])
        self.class_names = list(class_names) if class_names else [str(k) for k in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"Got {len(self.class_names)} class_names for num_classes={num_classes}.")

        self.model = build_resnet18(in_channels, num_classes, image_size, stem, pretrained)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer_factory = optimizer
        self.criterion = build_loss(loss, None, label_smoothing, focal_gamma)
        self.train_acc = build_metrics(num_classes, task)["acc"]
        self.val_metrics = build_metrics(num_classes, task).clone(prefix="val/")
        self.test_metrics = build_metrics(num_classes, task, with_confusion=True)
        self.test_results: dict[str, Any] = {}

    def forward(self, x: Tensor) -> Tensor:
        """Map normalised float32 ``(N, C, H, W)`` images to logits ``(N, K)``."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def predict_proba(self, x: Tensor) -> Tensor:
        """Return float32 class probabilities ``(N, K)``, with flip averaging when ``tta`` is on.

        The logits are cast to float32 first: under ``bf16-mixed`` autocast they are bfloat16,
        whose 8-bit mantissa rounds nearby probabilities to equal values and so changes AUC.
        """
        probs = self(x).float().softmax(dim=1)
        if self.hparams["tta"]:
            probs = (probs + self(x.flip(-1)).float().softmax(dim=1)) / 2
        return probs

    # Steps.

    def setup(self, stage: str) -> None:
        """Build class weights from the datamodule's train counts when requested."""
        if stage != "fit" or self.hparams["class_weights"] == "none":
            return
        datamodule = self.trainer.datamodule  # type: ignore[attr-defined]
        weights = balanced_class_weights(datamodule.class_counts)
        log.info("Balanced class weights: %s", [round(w, 3) for w in weights.tolist()])
        hp = self.hparams
        self.criterion = build_loss(hp["loss"], weights, hp["label_smoothing"], hp["focal_gamma"])

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Return the loss of one batch; logs loss and accuracy without host syncs."""
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        self.train_acc(logits, y)
        # The progress bar turns its values into Python numbers at every step, which waits for
        # the device to finish. So it shows the epoch mean, and the logger gets the step losses
        # every `log_every_n_steps`.
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True, logger=False)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Accumulate validation loss and metrics."""
        x, y = batch
        probs = self.predict_proba(x)
        self.log("val/loss", torch.nn.functional.nll_loss(probs.clamp_min(1e-8).log(), y), sync_dist=True)
        self.val_metrics.update(probs, y)

    def on_validation_epoch_end(self) -> None:
        """Log validation metrics (``val/auc`` selects the best checkpoint)."""
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Accumulate test metrics."""
        x, y = batch
        self.test_metrics.update(self.predict_proba(x), y)

    def on_test_epoch_end(self) -> None:
        """Log test metrics and write ``test_metrics.json`` into the run's log dir (rank zero)."""
        computed = self.test_metrics.compute()
        self.test_metrics.reset()
        confusion = computed.pop("confusion_matrix").cpu()
        scalars = {name: float(value) for name, value in computed.items()}
        self.log_dict({f"test/{name}": value for name, value in scalars.items()})
        self.test_results = {
            "dataset": self.hparams["dataset"],
            "task": self.hparams["task"],
            "class_names": self.class_names,
            "checkpoint": self._checkpoint_path(),
            "num_samples": int(confusion.sum()),
            "metrics": scalars,
            "per_class": per_class_report(confusion, self.class_names),
            "confusion_matrix": confusion.tolist(),
        }
        log_dir = self.trainer.log_dir  # A collective call under DDP: every rank must read it.
        if self.trainer.is_global_zero and log_dir:
            write_json(Path(log_dir) / TEST_METRICS_FILE, self.test_results)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Return ``probs`` ``(N, K)``, ``pred`` ``(N,)`` and the true ``label`` ``(N,)``."""
        x, y = batch
        probs = self.predict_proba(x)
        return {"probs": probs, "pred": probs.argmax(dim=1), "label": y}

    # Optimisation.

    def configure_optimizers(self) -> Any:
        """Build the optimizer and a per-step LR schedule."""
        optimizer = self.optimizer_factory(self.parameters())
        schedule = self.hparams["lr_schedule"]
        if schedule == "constant":
            return optimizer
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        if schedule == "onecycle":
            max_lr = [group["lr"] for group in optimizer.param_groups]
            scheduler: Any = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps)
        else:
            steps_per_epoch = max(1, total_steps // max(1, self.trainer.max_epochs or 1))
            warmup = min(total_steps - 1, self.hparams["warmup_epochs"] * steps_per_epoch)
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup))
            if warmup > 0:
                ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
                scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
            else:
                scheduler = cosine
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _checkpoint_path(self) -> str | None:
        path = getattr(self.trainer, "ckpt_path", None)
        return str(path) if path else None
