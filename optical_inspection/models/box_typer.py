"""The box typer: a small classifier of a defect's kind from a full-resolution patch centred on its box.

Whole-board inspect finds boxes with the dense map and names each box's kind. The pair network's type head sees a
whole training crop, pooled, so every other defect in the crop votes too (DeepPCB crops often hold several of
different kinds) and its features are the comparison's, which keep little of the golden's shape; that typed
86 % of DeepPCB's held-out boxes. This network looks only at a ``PATCH`` px square of test, golden and their
difference centred on the box, at full resolution (an open cuts a trace, a mouse bite only nibbles it; a spur
touches copper, spurious copper does not), and is trained on the kinds of the boxes themselves (boxes.csv
``type``): 94 % on the same boxes after 6 minutes on 2 CPU cores (``benchmarks/board_inspection.py``).
"""
from __future__ import annotations

import logging
import math
import time

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ..data.dataset import PairDataset
    from ..data.preprocess import Preprocessor

log = logging.getLogger(__name__)

PATCH = 64  # px: the defect and its surroundings (DeepPCB boxes: median side 37 px, 90 % under 55 px)
MAX_SHIFT = 6  # px the training patches move around the box centre (found boxes are not centred exactly)
BATCH = 64
LR = 2e-3
WEIGHT_DECAY = 1e-4
LABEL_SMOOTHING = 0.05


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class BoxTyper(nn.Module):
    """Patches (test, golden) [N, 3, PATCH, PATCH] each, normalised like the pair network's input → kind logits."""

    def __init__(self, num_types: int, channels: int = 24) -> None:
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            _block(9, c, 2), _block(c, c, 1), _block(c, 2 * c, 1), _block(2 * c, 2 * c, 2),
            _block(2 * c, 4 * c, 1), _block(4 * c, 4 * c, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(4 * c, num_types)

    def forward(self, test: torch.Tensor, golden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(torch.cat([test, golden, test - golden], dim=1)))


def patches(images: torch.Tensor, image_index: torch.Tensor, centres: torch.Tensor, size: int = PATCH
            ) -> torch.Tensor:
    """[N, C, size, size] squares of ``images`` [B, C, H, W] centred on ``centres`` [N, 2] (x, y pixels) of image
    ``image_index`` [N]; outside the image the border pixels repeat. One gather for all boxes."""
    _, _, h, w = images.shape
    offsets = torch.arange(size) - size // 2
    xs = (torch.round(centres[:, 0]).long()[:, None] + offsets).clamp(0, w - 1)  # [N, size]
    ys = (torch.round(centres[:, 1]).long()[:, None] + offsets).clamp(0, h - 1)
    picked = images[image_index[:, None, None], :, ys[:, :, None], xs[:, None, :]]  # [N, size, size, C]
    return picked.permute(0, 3, 1, 2).contiguous()


def augment(test: torch.Tensor, golden: torch.Tensor, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One quarter turn, flip and shift for the whole batch (a defect's kind survives all of them)."""
    turns, flip = (int(v) for v in torch.randint(0, 4, (2,), generator=generator))
    shift = [int(v) for v in torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (2,), generator=generator)]
    out = []
    for x in (test, golden):
        x = torch.rot90(x, turns, (2, 3))
        x = x.flip(3) if flip % 2 else x
        out.append(torch.roll(x, shift, (2, 3)))
    return out[0], out[1]


def fit(typer: BoxTyper, test: torch.Tensor, golden: torch.Tensor, kinds: torch.Tensor,
        normalise: Callable[[torch.Tensor], torch.Tensor], minutes: float, epochs: int,
        seed: int = 0) -> dict[str, float]:
    """Train ``typer`` on uint8 patches [N, C, P, P] (``normalise``d per batch like the pair network's input) and
    their kind indices [N] for ``epochs`` passes or ``minutes``, whichever ends first (AdamW, cosine decay over
    that budget, label smoothing). A plain loop, not Lightning: a few thousand steps on tensors already in memory,
    with nothing to checkpoint or log (the pair network's checkpoints carry the result). Returns steps and loss."""
    generator = torch.Generator().manual_seed(max(seed, 0))
    optimizer = torch.optim.AdamW(typer.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    budget = minutes * 60.0
    max_steps = max(1, math.ceil(epochs * len(kinds) / BATCH))
    start = time.monotonic()
    steps, loss_value = 0, math.nan
    typer.train()
    while steps < max_steps and (elapsed := time.monotonic() - start) < budget:
        done = max(elapsed / budget, steps / max_steps)  # the share of whichever budget runs out first
        for group in optimizer.param_groups:
            group["lr"] = LR * 0.5 * (1.0 + math.cos(math.pi * done))
        rows = torch.randint(len(kinds), (BATCH,), generator=generator)
        t, g = augment(normalise(test[rows]), normalise(golden[rows]), generator)
        loss = F.cross_entropy(typer(t, g), kinds[rows], label_smoothing=LABEL_SMOOTHING)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        loss_value = loss.item()
    for p in typer.parameters():  # frozen from here: the pair network's optimiser leaves it alone
        p.requires_grad_(False)
    log.info("Box typer: %d steps in %.0f s on %d boxes, last loss %.3f", steps, time.monotonic() - start,
             len(kinds), loss_value)
    return {"steps": float(steps), "loss": loss_value}


def training_patches(dataset: PairDataset, pre: Preprocessor, chunk: int = 256
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(test, golden uint8 [N, C, PATCH, PATCH], kinds int64 [N]) of every box of known kind in a training
    PairDataset (single-tile strips), decoded ``chunk`` rows at a time (uint8: 12 KB per box and side)."""
    boxes = dataset.boxes
    if boxes is None or boxes.kinds is None:
        raise ValueError("the dataset has no boxes with kinds")
    rows = np.flatnonzero((boxes.kinds >= 0).any(axis=1))
    if not len(rows):
        empty = torch.zeros((0, 3, PATCH, PATCH), dtype=torch.uint8)
        return empty, empty.clone(), torch.zeros(0, dtype=torch.int64)
    tests, goldens, kinds = [], [], []
    for start in range(0, len(rows), chunk):  # bounded memory: a chunk of decoded rows at a time
        part = rows[start:start + chunk]
        batch = dataset.__getitems__(part.tolist())
        test, golden = pre.concat(batch["test"]), pre.concat(batch["golden"])
        h, w = test.shape[-2:]
        row, slot = np.nonzero(boxes.kinds[part] >= 0)
        corners = torch.from_numpy(boxes.boxes[part[row], slot]).double()
        centres = torch.stack([(corners[:, 0] + corners[:, 2]) * w / 2, (corners[:, 1] + corners[:, 3]) * h / 2], 1)
        index = torch.from_numpy(row)
        tests.append(patches(test, index, centres))
        goldens.append(patches(golden, index, centres))
        kinds.append(torch.from_numpy(boxes.kinds[part[row], slot]))
    return torch.cat(tests), torch.cat(goldens), torch.cat(kinds)
