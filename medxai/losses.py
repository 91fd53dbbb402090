"""Classification losses: cross-entropy with class weights and label smoothing, and focal loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSSES: tuple[str, ...] = ("cross_entropy", "focal")


class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    Departs from the paper's sigmoid form: it uses the softmax probability of the true class,
    and ``weight`` plays the role of the per-class alpha.

    Args:
        gamma: Focusing parameter; 0 gives (weighted) cross-entropy.
        weight: Optional per-class weights ``(K,)``.
        label_smoothing: Smoothing applied to the cross-entropy term.
    """

    def __init__(self, gamma: float = 2.0, weight: Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"Invalid focal gamma={gamma}. Expected a value >= 0.")
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the mean loss for logits ``(N, K)`` and labels int64 ``(N,)``."""
        ce = F.cross_entropy(
            logits, target, weight=self.weight, reduction="none", label_smoothing=self.label_smoothing
        )
        p_true = logits.softmax(dim=1).gather(1, target[:, None]).squeeze(1)
        return ((1 - p_true).pow(self.gamma) * ce).mean()


def build_loss(
    name: str, class_weights: Tensor | None = None, label_smoothing: float = 0.0, focal_gamma: float = 2.0
) -> nn.Module:
    """Build a loss taking logits ``(N, K)`` and labels int64 ``(N,)``.

    Raises:
        ValueError: If ``name`` or ``label_smoothing`` is invalid.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"Invalid label_smoothing={label_smoothing}. Expected a value in [0, 1).")
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    if name == "focal":
        return FocalLoss(focal_gamma, class_weights, label_smoothing)
    raise ValueError(f"Invalid loss '{name}'. Expected one of {', '.join(LOSSES)}.")


def balanced_class_weights(class_counts: list[int]) -> Tensor:
    """Return weights ``N / (K * count_k)`` for each class, float32 ``(K,)``; empty classes get 0."""
    counts = torch.tensor(class_counts, dtype=torch.float32)
    weights = counts.sum() / (len(counts) * counts.clamp_min(1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights))
