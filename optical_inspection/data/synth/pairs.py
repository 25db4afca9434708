"""Synthetic test/golden pairs with defect masks and boxes: :func:`generate_pairs`.

The golden is the clean layout; the test is the same layout with (for defective pairs) one or two defects,
misregistered (warped) and photographed differently (gain, offset, blur, noise, JPEG). Separate random streams
for layout, defects, misregistration and photometry: the same seed with ``defect_rate=0`` gives the very same
pairs without their defects. Chunks of ``CHUNK`` tiles are drawn from (seed, chunk) so memory stays bounded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import render
from .defects import AOI_KINDS, COPPER_KINDS, MIN_AREA, paint, visible
from .layout import Layout, draw_layouts
from .misregister import jpeg, photometric, random_affines, to_uint8, warp
from .raster import Canvas

STYLES = ("binary", "grey", "rgb")
CHUNK = 64


@dataclass
class PairBatch:
    """uint8 tiles ``test``/``golden`` [B, L, S, S, C] (C 1 or 3), ``labels`` (defect kind or PASS), the defect
    ``mask`` [B, S, S] in the test image's frame and the ``boxes`` [k, 4] (x0, y0, x1, y1, inclusive) and
    ``kinds`` of each pair's defects; ``layout`` [B]: which board layout (component) each pair shows."""
    test: np.ndarray
    golden: np.ndarray
    labels: list[str]
    mask: np.ndarray
    boxes: list[np.ndarray] = field(default_factory=list)
    kinds: list[list[str]] = field(default_factory=list)
    layout: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)


def generate_pairs(n: int, *, size: int = 64, style: str = "binary", n_lights: int = 1, defect_rate: float = 0.5,
                   kinds: Sequence[str] | None = None, second_defect: float = 0.2, max_shift: float = 3.0,
                   use_jpeg: bool = True, defective: np.ndarray | None = None, pairs_per_layout: int = 1,
                   seed: int = 0) -> PairBatch:
    """``n`` pairs of ``size``-px tiles; ``style`` binary (bare board, DeepPCB-like, one light), grey or rgb
    (AOI boards with components under ``n_lights`` lights). ``kinds``: defect kinds to draw from (default: the
    six copper kinds for binary, all for AOI styles). ``defective`` [n] booleans: exactly these pairs get a
    defect (``defect_rate`` unused; a defect that cannot be placed falls back to one that always can).
    ``pairs_per_layout``: consecutive pairs sharing a layout (one component inspected on several boards)."""
    if style not in STYLES:
        raise ValueError(f"style {style!r} is not one of {STYLES}")
    allowed = COPPER_KINDS if style == "binary" else AOI_KINDS
    kinds = tuple(kinds) if kinds else allowed
    unknown = [k for k in kinds if k not in allowed]
    if unknown:
        raise ValueError(f"defect kinds {unknown} are not available for style {style!r}; use {list(allowed)}")
    if pairs_per_layout < 1:
        raise ValueError(f"pairs_per_layout must be >= 1 (got {pairs_per_layout})")
    if n < 1 or size < 16:
        raise ValueError(f"need n >= 1 and size >= 16 (got {n}, {size})")
    if defective is not None and len(defective) != n:
        raise ValueError(f"defective has {len(defective)} entries for {n} pairs")
    parts = [_chunk(min(CHUNK, n - start), size, style, 1 if style == "binary" else n_lights, defect_rate, kinds,
                    second_defect, max_shift, use_jpeg, np.random.SeedSequence([seed, start // CHUNK]),
                    None if defective is None else np.asarray(defective[start:start + CHUNK], dtype=bool),
                    pairs_per_layout)
             for start in range(0, n, CHUNK)]
    return PairBatch(np.concatenate([p.test for p in parts]), np.concatenate([p.golden for p in parts]),
                     sum((p.labels for p in parts), []), np.concatenate([p.mask for p in parts]),
                     sum((p.boxes for p in parts), []), sum((p.kinds for p in parts), []),
                     np.concatenate([p.layout + start for p, start in zip(parts, range(0, n, CHUNK))]))


def _chunk(n: int, size: int, style: str, n_lights: int, defect_rate: float, kinds: tuple[str, ...],
           second_defect: float, max_shift: float, use_jpeg: bool, seeds: np.random.SeedSequence,
           defective: np.ndarray | None, pairs_per_layout: int) -> PairBatch:
    layout_rng, defect_rng, warp_rng, photo_rng = (np.random.default_rng(s) for s in seeds.spawn(4))
    canvas = Canvas(size)
    layout_of = np.arange(n) // pairs_per_layout
    layout = draw_layouts(layout_rng, int(layout_of[-1]) + 1, size, components=style != "binary")
    if pairs_per_layout > 1:
        layout = Layout(layout.materials[layout_of], {k: v[layout_of] for k, v in layout.traces.items()},
                        {k: v[layout_of] for k, v in layout.bodies.items()}, layout.scale[layout_of])
    golden_mats = layout.materials
    test_mats = golden_mats.copy()
    # defects: slot 0 on a share of the tiles, slot 1 on some of those
    first = defect_rng.random(n) < defect_rate
    if defective is not None:
        first = defective
    slots = [first, first & (defect_rng.random(n) < second_defect)]
    masks, kind_of = [], []
    fallback = "spurious_copper" if style == "binary" else "contamination"
    for slot, want in enumerate(slots):
        before = test_mats.copy()
        choice = np.asarray(kinds, dtype=object)[defect_rng.integers(len(kinds), size=n)]
        kept = _paint_kinds(defect_rng, test_mats, before, layout, want, choice, canvas)
        if slot == 0:  # the first defect must exist: retry what could not be placed with a kind that can
            retry = want & ~kept
            choice[retry] = fallback
            kept |= _paint_kinds(defect_rng, test_mats, before, layout, retry, choice, canvas)
        mask = np.zeros((n, size, size), dtype=bool)
        mask[kept] = np.abs(visible(test_mats[kept]) - visible(before[kept])).sum(1) > 0.25
        masks.append(mask)
        kind_of.append([str(c) if keep else None for c, keep in zip(choice, kept)])

    affines = random_affines(warp_rng, n, max_shift=max_shift)
    test_vis = visible(test_mats)[:, :1] if style == "binary" else visible(test_mats)
    warped = warp(np.concatenate([test_vis, np.stack(masks, 1).astype(np.float32)], axis=1), affines)
    test_vis, masks_t = warped[:, :test_vis.shape[1]], warped[:, test_vis.shape[1]:] > 0.2

    if style == "binary":
        polarity = photo_rng.random(n) < 0.5
        test_img = render.binary(test_vis[:, 0], polarity)
        golden_img = render.binary(visible(golden_mats)[:, 0], polarity)
        # blur + re-binarise: a scanned, thresholded image; then only noise-free JPEG artefacts
        test_img = (photometric(photo_rng, test_img, gain=0, offset=0, max_noise=0) >= 127.5) * 255.0
        golden_img = (photometric(photo_rng, golden_img, gain=0, offset=0, max_noise=0) >= 127.5) * 255.0
    else:
        # one palette per layout: the boards inspected against one golden are the same product (same colours)
        palettes, edge = render.board_palettes(photo_rng, int(layout_of[-1]) + 1, n_lights)
        palettes, edge = palettes[layout_of], edge[layout_of]
        colour = style == "rgb"
        test_img = photometric(photo_rng, render.lights(test_vis, palettes, edge, colour))
        golden_img = photometric(photo_rng, render.lights(visible(golden_mats), palettes, edge, colour), gain=0.03,
                                 offset=3.0)
    test_u8 = np.moveaxis(to_uint8(test_img), 2, -1)  # [B, L, S, S, C]
    golden_u8 = np.moveaxis(to_uint8(golden_img), 2, -1)
    if use_jpeg:
        test_u8, golden_u8 = jpeg(photo_rng, test_u8), jpeg(photo_rng, golden_u8)

    boxes, kinds_per_pair = [], []
    for_box = masks_t.transpose(1, 0, 2, 3)  # [D, B, S, S]
    ys, xs = np.asarray(for_box.any(3)), np.asarray(for_box.any(2))  # [D, B, S]
    for i in range(n):
        rows = [(int(xs[d, i].argmax()), int(ys[d, i].argmax()), size - 1 - int(xs[d, i, ::-1].argmax()),
                 size - 1 - int(ys[d, i, ::-1].argmax())) for d in range(len(slots)) if kind_of[d][i] is not None]
        boxes.append(np.asarray(rows, dtype=np.int32).reshape(-1, 4))
        kinds_per_pair.append([k for d in range(len(slots)) if (k := kind_of[d][i]) is not None])
    labels = [k[0] if k else "PASS" for k in kinds_per_pair]
    return PairBatch(test_u8, golden_u8, labels, np.asarray(masks_t.any(1)), boxes, kinds_per_pair, layout_of)


def _paint_kinds(rng: np.random.Generator, mats: np.ndarray, before: np.ndarray, layout: Layout, want: np.ndarray,
                 choice: np.ndarray, canvas: Canvas) -> np.ndarray:
    """Paint ``choice[i]`` on each tile where ``want``; tiles whose visible change is under MIN_AREA are reset to
    ``before``. Returns the tiles that kept a defect."""
    placed = np.zeros(len(mats), dtype=bool)
    for kind in dict.fromkeys(choice[want]):
        rows = np.nonzero(want & (choice == kind))[0]
        placed[rows] = paint(rng, mats, layout, rows, str(kind), canvas)
    change = np.zeros(len(mats), dtype=np.float32)
    change[want] = np.abs(visible(mats[want]) - visible(before[want])).sum((1, 2, 3))
    kept = placed & want & (change >= MIN_AREA)
    reset = want & ~kept
    mats[reset] = before[reset]
    return kept
