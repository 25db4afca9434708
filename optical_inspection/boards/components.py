"""Connected components and their boxes, in torch (no scipy in the lock): labels spread by 3x3 max pooling
until they settle, so a component takes as many rounds as its longest path (a few on a map's cell grid)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def label(mask: torch.Tensor, max_rounds: int = 10_000) -> tuple[torch.Tensor, int]:
    """(int64 labels [H, W], 0 = background, 1..K, count K) of 8-connected components of a bool mask."""
    h, w = mask.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float32, device=mask.device).reshape(1, 1, h, w)
    keep = mask.reshape(1, 1, h, w).float()
    labels = ids * keep
    for _ in range(max_rounds):
        spread = F.max_pool2d(labels, 3, stride=1, padding=1) * keep
        if torch.equal(spread, labels):
            break
        labels = spread
    flat = labels.reshape(-1).long()
    values, dense = torch.unique(flat, return_inverse=True)
    if len(values) and values[0] == 0:
        return dense.reshape(h, w), len(values) - 1
    return (dense + 1).reshape(h, w), len(values)


def boxes_of(labels: torch.Tensor, count: int, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float [K, 4] x1 y1 x2 y2 pixel-corner boxes, float [K] max of ``values`` [H, W]) per component."""
    h, w = labels.shape
    flat = labels.reshape(-1)
    inside = flat > 0
    index = flat[inside] - 1
    ys, xs = torch.meshgrid(torch.arange(h, device=labels.device), torch.arange(w, device=labels.device),
                            indexing="ij")
    out = torch.empty(count, 4, device=labels.device)
    for col, (coords, reduce, extra) in enumerate(((xs, "amin", 0), (ys, "amin", 0), (xs, "amax", 1),
                                                  (ys, "amax", 1))):
        init = torch.full((count,), float(w + h) if reduce == "amin" else -1.0, device=labels.device)
        out[:, col] = init.scatter_reduce(0, index, coords.reshape(-1)[inside].float(), reduce) + extra
    peak = torch.full((count,), float("-inf"), device=labels.device)
    peak = peak.scatter_reduce(0, index, values.reshape(-1)[inside].float(), "amax")
    return out, peak
