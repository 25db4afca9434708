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
    """float32 [ceil(H/8), ceil(W/8)] cell map (logit units) of normalised boards ``test``/``golden`` [3, H, W]
    (on the CPU); ``window``: crop side in cells for the local mean; ``tile``: tile side in pixels."""
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
            mean = F.avg_pool2d(mixed, window, stride=1, padding=window // 2, count_include_pad=False)
            part = model.cell_map(mixed, mean[..., :mixed.shape[2], :mixed.shape[3]])[0].cpu()
            cy, cx = (ty - y0) // STRIDE, (tx - x0) // STRIDE
            ny, nx = math.ceil(min(tile, h - ty) / STRIDE), math.ceil(min(tile, w - tx) / STRIDE)
            cells[ty // STRIDE:ty // STRIDE + ny, tx // STRIDE:tx // STRIDE + nx] = part[cy:cy + ny, cx:cx + nx]
    return cells


def board_map(cells: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The cell map upsampled to the board's pixels [H, W]."""
    return upsample_cells(cells[None], height, width, STRIDE)[0]
