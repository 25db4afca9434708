"""A Compact network's defect map over a whole board of any size, tile by tile (one tile on the device at a
time). Each map cell sees a local channel mean over one training crop (``window`` cells) in place of the crop's
global mean, so a board's map reads like the maps of the crops the network was trained on."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.compact import Compact, upsample_cells

STRIDE = 8
MARGIN = 128  # pixels of context around a tile: the receptive field (~40 px) plus half a 128-px crop window


def board_cells(model: Compact, test: torch.Tensor, golden: torch.Tensor, window: int, tile: int,
                device: torch.device) -> torch.Tensor:
    """float32 [ceil(H/8), ceil(W/8)] cell map (logit units, :meth:`Compact.cells`) of normalised boards
    ``test``/``golden`` [3, H, W] (on the CPU); ``window``: crop side in cells for the local mean; ``tile``: tile
    side in pixels."""
    _, h, w = test.shape
    tile = max(STRIDE, tile // STRIDE * STRIDE)
    cells = torch.empty(math.ceil(h / STRIDE), math.ceil(w / STRIDE))
    for ty in range(0, h, tile):
        for tx in range(0, w, tile):
            y0, x0 = max(0, ty - MARGIN), max(0, tx - MARGIN)
            y1, x1 = min(h, ty + tile + MARGIN), min(w, tx + tile + MARGIN)
            t = test[None, :, y0:y1, x0:x1].to(device)
            g = golden[None, :, y0:y1, x0:x1].to(device)
            mixed = model.mixed(t, g)
            part = model.cells(mixed, box_mean(mixed, window))[0].cpu()
            cy, cx = (ty - y0) // STRIDE, (tx - x0) // STRIDE
            ny, nx = math.ceil(min(tile, h - ty) / STRIDE), math.ceil(min(tile, w - tx) / STRIDE)
            cells[ty // STRIDE:ty // STRIDE + ny, tx // STRIDE:tx // STRIDE + nx] = part[cy:cy + ny, cx:cx + nx]
    return cells


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of ``x`` [B, C, H, W] over the ``window``² cells from ``window // 2`` before each cell (the part inside
    the map; same size out): avg_pool2d(stride 1, count_include_pad=False), from running sums (O(1) per cell; the
    pooled form cost ~10 ms on a 640-px board's map)."""
    before = window // 2
    out, count = x, torch.ones((), dtype=x.dtype, device=x.device)
    for dim in (2, 3):
        n = x.shape[dim]
        at = torch.arange(n, device=x.device)
        lo, hi = (at - before).clamp(min=0), (at - before + window).clamp(max=n)
        sums = F.pad(torch.cumsum(out, dim), (1, 0) if dim == 3 else (0, 0, 1, 0))
        out = sums.index_select(dim, hi) - sums.index_select(dim, lo)
        count = count * ((hi - lo).to(x.dtype).view(-1, 1) if dim == 2 else (hi - lo).to(x.dtype))
    return out / count


def board_map(cells: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The cell map upsampled to the board's pixels [H, W]."""
    return upsample_cells(cells[None], height, width, STRIDE)[0]
