import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medxai.metrics import build_metrics, per_class_report


def medmnist_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """AUC as medmnist.Evaluator defines it (binary: column 1; else mean one-vs-rest)."""
    if y_score.shape[1] == 2:
        return roc_auc_score(y_true, y_score[:, 1])
    return float(np.mean([roc_auc_score(y_true == k, y_score[:, k]) for k in range(y_score.shape[1])]))


@pytest.mark.parametrize("num_classes", [2, 5, 8])
def test_auc_and_acc_match_medmnist_evaluator(num_classes: int):
    generator = torch.Generator().manual_seed(num_classes)
    labels = torch.arange(200) % num_classes
    logits = torch.randn(200, num_classes, generator=generator) + torch.nn.functional.one_hot(labels) * 1.5
    probs = logits.softmax(dim=1)
    metrics = build_metrics(num_classes, "multi-class")
    result = metrics(probs, labels)
    expected_auc = medmnist_auc(labels.numpy(), probs.numpy())
    expected_acc = float((probs.argmax(1) == labels).float().mean())
    assert float(result["auc"]) == pytest.approx(expected_auc, abs=1e-5)
    assert float(result["acc"]) == pytest.approx(expected_acc, abs=1e-6)


def test_ordinal_task_adds_kappa_and_mae():
    probs = torch.eye(5)[torch.tensor([0, 1, 2, 3, 4, 4])]
    labels = torch.tensor([0, 1, 2, 3, 4, 2])
    result = build_metrics(5, "ordinal-regression")(probs, labels)
    assert float(result["mae"]) == pytest.approx(2 / 6)
    assert 0 < float(result["qwk"]) < 1


def test_per_class_report_from_confusion():
    confusion = torch.tensor([[3, 1], [0, 4]])
    report = per_class_report(confusion, ["a", "b"])
    assert report[0] == {"class": "a", "precision": 1.0, "recall": 0.75, "f1": pytest.approx(6 / 7), "support": 4}
    assert report[1]["precision"] == pytest.approx(0.8)
    assert report[1]["recall"] == 1.0
