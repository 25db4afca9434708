"""Synthetic defects painted on the test image of PASS training pairs, on the fly (``dataset.synthetic_defects``).

A real pair has no layout to paint on, so the test image is read as two phases (brighter or darker than the middle
of its first light's range: copper and substrate on a bare board) and a defect is a shape of the *other* phase,
drawn with the synthetic generator's rasteriser (:class:`~.synth.raster.Canvas`) on every light of the test image
alike, never on the golden:

- ``spot``: a blob inside a uniform area (spurious copper, or a pin hole, depending on the side it lands on);
- ``edge``: a disc on a phase boundary (a spur, or a mouse bite);
- ``cut``: a thin bar across whatever lies under it (an open across a trace, a short across a gap);
- ``smudge``: a blob halfway between the phases (contamination, a stain).

Vectorised over the batch (numpy); a pair becomes a defect (label 1) only when the painted change is visible.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .synth.defects import window_max
from .synth.raster import Canvas

if TYPE_CHECKING:
    from ..config.dataset import SyntheticDefectsConfig

KINDS = ("spot", "edge", "cut", "smudge")
MIN_CHANGED = 2.0  # pixels of full phase contrast a painted defect must change to count
BORDER = 3  # defects are centred at least this far from the tile's edge (a shift augmentation keeps them in)
BLOB_DISCS = 3
MASK_COVERAGE = 0.25  # a pixel this much covered by a painted defect, and visibly changed, is in its mask
MASK_CHANGE = 8.0  # grey levels (of any light and channel) a masked pixel must change by


class DefectInjector:
    """``injector(batch) -> batch``: on a PairDataset batch of uint8 tiles ``[B, N, C, H, W]``, paints a defect on
    the test image of a share ``rate`` of its PASS pairs and labels them 1. Its random stream is seeded by torch's
    initial seed (set per epoch and per loader worker) and the batch's rows, so runs stay reproducible without
    taking draws from the stream the augmentation uses."""

    def __init__(self, cfg: SyntheticDefectsConfig) -> None:
        self.rate = float(cfg.rate)
        self.kinds = tuple(cfg.kinds)
        self.max_size = float(cfg.max_size)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([torch.initial_seed() % 2**63, *batch["index"].tolist()])
        label = batch["label"]
        rows = np.nonzero((label.numpy() == 0) & (rng.random(len(label)) < self.rate))[0]
        if not len(rows):
            return batch
        painted, ok, where = paint_defects(rng, batch["test"][rows].numpy(), self.kinds, self.max_size)
        test, label = batch["test"].clone(), label.clone()
        test[rows[ok]] = torch.from_numpy(painted[ok])
        label[rows[ok]] = 1.0
        out = {**batch, "test": test, "label": label}
        if "mask" in batch:  # the painted pixels are the pair's defect
            mask, known = batch["mask"].clone(), batch["mask_known"].clone()
            mask[rows[ok], 0] = torch.from_numpy(where[ok]).to(mask.dtype)
            known[rows[ok]] = True
            out.update(mask=mask, mask_known=known)
        return out


def paint_defects(rng: np.random.Generator, tiles: np.ndarray, kinds: tuple[str, ...], max_size: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One defect of a kind drawn from ``kinds`` per tile of ``tiles`` (uint8 ``[n, N, C, H, W]``); returns the
    painted tiles, which of them changed visibly and each defect's pixels ``[n, H, W]`` (bool: covered and visibly
    changed; a bar across a trace and its gap changes only the trace)."""
    x = tiles.astype(np.float32)
    n, _, _, h, w = x.shape
    luma = x[:, 0].mean(1)  # [n, H, W], first light
    lo, hi = luma.min((1, 2)), luma.max((1, 2))
    bright = luma > ((lo + hi) / 2)[:, None, None]
    b = bright.astype(np.float32)
    mixed = lambda r: (window_max(b, r) > 0) & (window_max(1 - b, r) > 0)  # noqa: E731
    edge = mixed(1)
    places = {"spot": ~mixed(3), "edge": edge, "cut": ~edge, "smudge": np.ones_like(edge)}
    kind = np.asarray(kinds)[rng.integers(len(kinds), size=n)]
    allowed = np.zeros_like(edge)
    for k in KINDS:
        allowed[kind == k] = places[k][kind == k]
    allowed[:, :BORDER], allowed[:, h - BORDER:], allowed[:, :, :BORDER], allowed[:, :, w - BORDER:] = (False,) * 4
    noise = np.where(allowed.reshape(n, -1), rng.random((n, h * w), dtype=np.float32) + 1, 0)
    idx = noise.argmax(1)
    found = noise[np.arange(n), idx] > 0
    cy, cx = (idx // w).astype(np.float32), (idx % w).astype(np.float32)
    coverage = _shapes(rng, Canvas(max(h, w)), kind, cx, cy, found, max_size)[:, :h, :w]

    centre_bright = bright[np.arange(n), idx // w, idx % w]
    same = bright == centre_bright[:, None, None]  # [n, H, W]: the phase under the defect's centre

    def phase_mean(where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = where.sum((1, 2)).astype(np.float32)
        total = np.einsum("nlchw,nhw->nlc", x, where.astype(np.float32))
        return total / np.maximum(count, 1)[:, None, None], count

    here, _ = phase_mean(same)
    there, count = phase_mean(~same)
    there = np.where(count[:, None, None] > 0, there, 255.0 - here)  # a uniform tile: the other extreme
    mix = np.where(kind == "smudge", rng.uniform(0.3, 0.7, n), 1.0).astype(np.float32)
    value = here + mix[:, None, None] * (there - here)  # [n, N, C]
    a = coverage[:, None, None]
    out = x * (1 - a) + value[..., None, None] * a
    contrast = np.maximum(np.abs(there - here)[:, 0].mean(-1), 16.0)
    changed = np.abs(out[:, 0] - x[:, 0]).mean(1).sum((1, 2)) / contrast
    pixels = (coverage >= MASK_COVERAGE) & (np.abs(out - x).max(axis=(1, 2)) >= MASK_CHANGE)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), found & (changed >= MIN_CHANGED), pixels


def _shapes(rng: np.random.Generator, canvas: Canvas, kind: np.ndarray, cx: np.ndarray, cy: np.ndarray,
            on: np.ndarray, max_size: float) -> np.ndarray:
    """Coverage ``[n, S, S]`` of each tile's defect shape (sizes up to ``max_size`` px across)."""
    n = len(kind)
    radius = rng.uniform(0.5, max_size / 2, n).astype(np.float32)
    out = np.zeros((n, canvas.size, canvas.size), dtype=np.float32)
    blob = on & np.isin(kind, ("spot", "smudge"))
    if blob.any():
        k = BLOB_DISCS
        scale = np.where(kind == "smudge", 1.5, 1.0).astype(np.float32)[:, None] * radius[:, None]
        offset = rng.uniform(-1, 1, (2, n, k)).astype(np.float32) * scale * (np.arange(k) > 0)
        live = blob[:, None] & (rng.random((n, k)) < np.where(np.arange(k) == 0, 1.0, 0.5))
        r = (scale * rng.uniform(0.5, 1.0, (n, k))).astype(np.float32)
        out[blob] = canvas.disc_layer(cx[:, None] + offset[0], cy[:, None] + offset[1], r, live)[blob]
    disc = on & (kind == "edge")
    if disc.any():
        out[disc] = canvas.discs(cx, cy, np.minimum(radius, 3.0), on=disc)[disc]
    bar = on & (kind == "cut")
    if bar.any():
        angle = rng.choice(np.array([0, 45, 90, 135]), n)
        half_len = np.maximum(radius * 2, 3.0)
        half_wid = rng.uniform(0.5, 1.5, n).astype(np.float32)
        out[bar] = canvas.rects(cx, cy, half_len, half_wid, angle, on=bar)[bar]
    return out
