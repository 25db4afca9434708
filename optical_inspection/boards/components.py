"""Connected components and their boxes, in torch (no scipy in the lock): each pixel takes the smallest label in
its 3x3 neighbourhood, then follows labels to their own labels (pointer jumping), until nothing changes; a
component settles in a few rounds whatever its length (about log2 of its longest path)."""
from __future__ import annotations

import torch

from ..models.compact import window_reduce


def label(mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(int64 labels [H, W], 0 = background, 1..K in order of first pixel, count K) of the 8-connected
    components of a bool mask."""
    h, w = mask.shape
    n = h * w  # the background's label, above every pixel index
    labels = torch.where(mask, torch.arange(n, device=mask.device).reshape(h, w), n)
    table = torch.full((n + 1,), n, dtype=torch.int64, device=mask.device)  # table[p]: pixel p's label
    while True:
        hooked = torch.where(mask, window_reduce(labels, 1, torch.minimum, n), n)
        while True:  # a label is a pixel of the same component whose own label is no larger: follow it
            table[:n] = hooked.reshape(-1)
            jumped = table[hooked]
            if torch.equal(jumped, hooked):
                break
            hooked = jumped
        if torch.equal(hooked, labels):
            break
        labels = hooked
    values, dense = torch.unique(labels[mask], return_inverse=True)  # foreground only: a few pixels to sort
    out = torch.zeros(h, w, dtype=torch.int64, device=mask.device)
    out[mask] = dense + 1
    return out, len(values)


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
