"""Training losses: TAO's contrastive loss for the Siamese types, BCE on the logit for Compact (plus the
defect-kind cross-entropy of its type head)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_losses(distance: torch.Tensor, label: torch.Tensor, margin: float) -> torch.Tensor:
    """TAO's ContrastiveLoss1 per pair: ``(1−y)·d² + y·max(0, m−d)²`` (y = 1 for a defect, no ½ factor).
    TAO's loss is the batch mean of these."""
    return (1.0 - label) * distance.pow(2) + label * F.relu(margin - distance).pow(2)


def logit_losses(logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per pair of the Compact model's logit (label 1 = defect)."""
    return F.binary_cross_entropy_with_logits(logit, label, reduction="none")


def pair_losses(model_type: str, score: torch.Tensor, label: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-pair loss of ``model_type`` for scores (distance or logit) and float labels in {0, 1}."""
    if model_type == "Compact":
        return logit_losses(score, label)
    return contrastive_losses(score, label, margin)


TYPE_LOSS_WEIGHT = 0.5  # the kind is secondary: PASS/FAIL stays the objective that decides


def type_loss(type_logits: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the defect-kind logits [B, K] over the rows whose kind is known (``kind`` ≥ 0); 0 (with a
    gradient, so every DDP rank uses the head) when none is."""
    total = F.cross_entropy(type_logits, kind, ignore_index=-1, reduction="sum")
    return total / (kind >= 0).sum().clamp(min=1)
