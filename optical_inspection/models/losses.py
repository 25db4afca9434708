"""Training losses: TAO's contrastive loss for the Siamese types, BCE on the logit for Compact (plus the
defect-kind cross-entropy of its type head, and the per-cell loss of its dense map)."""
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


DENSE_LOSS_WEIGHT = 1.0  # the map's cells: as much as the pair's own label
CELL = 8  # pixels per dense-map cell


def cell_targets(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 pixel masks [B, M, H, W] -> per-cell maxima [B, M, height, width]: cell i centred on pixel 8i (as the
    stride-2 'same' convolutions put it) covers pixels [8i - 4, 8i + 4)."""
    pooled = F.max_pool2d(mask.float(), CELL, stride=CELL, padding=CELL // 2)
    return pooled[..., :height, :width]


def dense_loss(logits: torch.Tensor, mask: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """BCE of the defect logit [B, h, w] of every cell of the pairs whose defect pixels are ``known`` [B] (PASS
    pairs: all clean; boxes; painted defects); ``mask`` uint8 [B, 1, H, W]. 0 with a gradient when nothing is known
    (every DDP rank uses the head)."""
    target = cell_targets(mask, *logits.shape[-2:])[:, 0]
    weight = known.to(logits.dtype)[:, None, None].expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
    return bce / weight.sum().clamp(min=1)
