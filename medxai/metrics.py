"""Classification metrics computed the way MedMNIST's own evaluator computes them.

ACC is top-1 accuracy. AUC is the one-vs-rest ROC AUC averaged over classes (macro) for
multi-class and ordinal tasks, and the ROC AUC of the positive class's probability for binary
tasks, matching ``medmnist.Evaluator``. Ordinal tasks add quadratic-weighted Cohen's kappa and
the mean absolute error between predicted and true grades.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

ORDINAL_TASK = "ordinal-regression"


class _BinaryAUROCFromProbs(BinaryAUROC):
    """BinaryAUROC that takes ``(N, 2)`` class probabilities and scores column 1."""

    def update(self, preds: Tensor, target: Tensor) -> None:  # type: ignore[override]
        super().update(preds[:, 1], target)


class _GradeMAE(MeanAbsoluteError):
    """Mean absolute error between the argmax grade and the true grade."""

    def update(self, preds: Tensor, target: Tensor) -> None:  # type: ignore[override]
        super().update(preds.argmax(dim=1).float(), target.float())


def build_metrics(num_classes: int, task: str, with_confusion: bool = False) -> MetricCollection:
    """Build a metric collection that takes probabilities ``(N, K)`` and labels int64 ``(N,)``.

    Args:
        num_classes: Number of classes ``K``.
        task: medmnist task string; ``ordinal-regression`` adds ``qwk`` and ``mae``.
        with_confusion: Add a ``confusion_matrix`` entry (``(K, K)``, rows are true classes).

    Returns:
        A collection with keys ``acc``, ``auc``, ``f1_macro`` and the optional entries.
    """
    auc: Any = (
        _BinaryAUROCFromProbs()
        if num_classes == 2
        else MulticlassAUROC(num_classes=num_classes, average="macro")
    )
    metrics: dict[str, Any] = {
        "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
        "auc": auc,
        "f1_macro": MulticlassF1Score(num_classes=num_classes, average="macro"),
    }
    if task == ORDINAL_TASK:
        metrics["qwk"] = MulticlassCohenKappa(num_classes=num_classes, weights="quadratic")
        metrics["mae"] = _GradeMAE()
    if with_confusion:
        metrics["confusion_matrix"] = MulticlassConfusionMatrix(num_classes=num_classes)
    return MetricCollection(metrics)


def per_class_report(confusion: Tensor, class_names: list[str]) -> list[dict[str, Any]]:
    """Derive precision, recall, F1 and support per class from a confusion matrix.

    Args:
        confusion: int ``(K, K)``; rows are true classes, columns predicted classes.
        class_names: ``K`` names in label order.

    Returns:
        One dict per class with ``class``, ``precision``, ``recall``, ``f1`` and ``support``.
        A ratio with a zero denominator is reported as 0.0, as scikit-learn does by default.
    """
    confusion = confusion.double()
    true_positive = confusion.diag()
    predicted = confusion.sum(dim=0)
    support = confusion.sum(dim=1)
    precision = torch.where(predicted > 0, true_positive / predicted.clamp_min(1), torch.zeros_like(predicted))
    recall = torch.where(support > 0, true_positive / support.clamp_min(1), torch.zeros_like(support))
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp_min(1e-12), torch.zeros_like(denominator))
    return [
        {
            "class": name,
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
        }
        for index, name in enumerate(class_names)
    ]
