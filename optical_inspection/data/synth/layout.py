"""Procedural copper layouts: traces (0/45/90/135 degrees, several widths, parallel buses, bends), pads, SMD
footprints with component bodies, vias with drills, copper planes and seven-segment text marks.

A layout is a stack of material coverage maps ``[B, 6, S, S]`` (COPPER, DRILL, SILK, BODY, and SCRATCH, DIRT for
defects; float32 in [0, 1])
plus the trace segments and component boxes the defect painter needs to place defects on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .raster import Canvas, subtract, union

COPPER, DRILL, SILK, BODY, SCRATCH, DIRT = range(6)
N_MATERIALS = 6
POLYLINES, PARALLEL, PADS, VIAS, FOOTPRINTS, GLYPHS = 4, 3, 6, 4, 2, 3
ANGLES = np.array([0, 90, 45, 135])
ANGLE_P = np.array([0.36, 0.36, 0.14, 0.14])
# seven-segment strokes: (centre x, centre y) in glyph units (w = 1, h = 2) and horizontal?
_SEGMENTS = ((0.5, 0.0, True), (1.0, 0.5, False), (1.0, 1.5, False), (0.5, 2.0, True),
             (0.0, 1.5, False), (0.0, 0.5, False), (0.5, 1.0, True))


@dataclass
class Layout:
    materials: np.ndarray   # float32 [B, 6, S, S]
    traces: dict[str, np.ndarray]  # cx, cy, half_len, half_wid, angle, on: [B, K]
    bodies: dict[str, np.ndarray]  # cx, cy, hx, hy, on: [B, FOOTPRINTS]
    scale: np.ndarray  # [B] feature scale (pixels per layout unit) of each tile

    def __len__(self) -> int:
        return len(self.materials)


def _unit(angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rad = np.deg2rad(angle)
    return np.cos(rad).astype(np.float32), np.sin(rad).astype(np.float32)


def draw_layouts(rng: np.random.Generator, n: int, size: int, *, components: bool = True,
                 copper_text: float = 0.3) -> Layout:
    """``n`` random layouts of ``size`` px. ``components``: SMD bodies and silkscreen (AOI boards); without
    them only copper and drills (DeepPCB-like bare boards). ``copper_text``: share of boards with copper text."""
    canvas = Canvas(size)
    s = float(size)
    rects: dict[int, list[tuple[np.ndarray, ...]]] = {m: [] for m in range(N_MATERIALS)}
    discs: dict[int, list[tuple[np.ndarray, ...]]] = {m: [] for m in range(N_MATERIALS)}

    def rect(material: int, cx, cy, half_len, half_wid, angle, on) -> None:
        rects[material].append(np.broadcast_arrays(cx, cy, half_len, half_wid, angle, on))

    def disc(material: int, cx, cy, radius, on) -> None:
        discs[material].append(np.broadcast_arrays(cx, cy, radius, on))
    # feature size relative to the tile, log-uniform over a wide range: fine-pitch AOI crops to DeepPCB's thick
    # traces and pads (a 128-px crop of a 640-px DeepPCB scan holds 6-30 px traces)
    scale = (size / 64.0 * np.exp(rng.uniform(np.log(0.5), np.log(3.0), n))).astype(np.float32)
    f32 = np.float32

    def uni(lo: float, hi: float, *shape: int) -> np.ndarray:
        return rng.uniform(lo, hi, (n, *shape)).astype(f32)

    # -- traces: polylines of two segments, each repeated as a parallel bus ---------------------------------
    k = POLYLINES * PARALLEL * 2
    tr = {key: np.zeros((n, k), dtype=f32) for key in ("cx", "cy", "half_len", "half_wid", "angle", "on")}
    ends = []
    slot = 0
    for p in range(POLYLINES):
        on_line = rng.random(n) < (0.95 if p == 0 else 0.7)
        copies = rng.integers(1, PARALLEL + 1, n)
        hw = (uni(0.8, 2.6) * scale).clip(0.7)
        gap = hw * uni(2.0, 5.0) + 1.0
        a1 = rng.choice(ANGLES, n, p=ANGLE_P)
        turn = rng.choice([0, 45, -45, 90, -90], n, p=[0.3, 0.25, 0.25, 0.1, 0.1])
        a2 = (a1 + turn) % 180
        flip2 = rng.random(n) < 0.5  # the second leg may head the other way along its axis
        l1, l2 = uni(0.15, 0.8) * s, uni(0.1, 0.7) * s
        start_x, start_y = uni(-0.1, 1.1) * s, uni(-0.1, 1.1) * s
        d1x, d1y = _unit(a1)
        d2x, d2y = _unit(a2)
        d2x, d2y = np.where(flip2, -d2x, d2x), np.where(flip2, -d2y, d2y)
        for c in range(PARALLEL):
            on = on_line & (copies > c)
            ox, oy = -d1y * (2 * hw + gap) * c, d1x * (2 * hw + gap) * c
            sx, sy = start_x + ox, start_y + oy
            jx, jy = sx + d1x * l1, sy + d1y * l1
            ex, ey = jx + d2x * l2, jy + d2y * l2
            for (cx, cy, half, ang) in ((sx + d1x * l1 / 2, sy + d1y * l1 / 2, l1 / 2, a1),
                                        (jx + d2x * l2 / 2, jy + d2y * l2 / 2, l2 / 2, a2)):
                tr["cx"][:, slot], tr["cy"][:, slot], tr["half_len"][:, slot] = cx, cy, half
                tr["half_wid"][:, slot], tr["angle"][:, slot], tr["on"][:, slot] = hw, ang, on
                rect(COPPER, cx, cy, half, hw, ang, on=on)
                slot += 1
            disc(COPPER, jx, jy, hw, on=on & (turn != 0))  # rounded bend
            if c == 0:
                ends.append((sx, sy, ex, ey, hw, on))

    # -- pads: at trace ends or anywhere; square or round ------------------------------------------------------
    for p in range(PADS):
        sx, sy, ex, ey, hw, line_on = ends[p % len(ends)]
        at_end = line_on & (rng.random(n) < 0.6)
        use_start = rng.random(n) < 0.5
        px = np.where(at_end, np.where(use_start, sx, ex), uni(0, 1) * s)
        py = np.where(at_end, np.where(use_start, sy, ey), uni(0, 1) * s)
        half = np.maximum(hw * uni(1.6, 3.2), scale * uni(1.5, 5.0))
        half = np.where(rng.random(n) < 0.1, uni(0.15, 0.4) * s, half)  # now and then a large round pad
        on = rng.random(n) < 0.75
        square = rng.random(n) < 0.5
        rect(COPPER, px, py, half, half * uni(0.6, 1.0), rng.choice([0, 90], n), on=on & square)
        disc(COPPER, px, py, half, on=on & ~square)
        drilled = on & ~square & (rng.random(n) < 0.5)
        disc(DRILL, px, py, half * uni(0.3, 0.5), on=drilled)

    # -- vias ----------------------------------------------------------------------------------------------------
    for v in range(VIAS):
        sx, sy, ex, ey, hw, line_on = ends[v % len(ends)]
        at_end = line_on & (rng.random(n) < 0.5)
        vx = np.where(at_end, ex, uni(0, 1) * s)
        vy = np.where(at_end, ey, uni(0, 1) * s)
        r = np.maximum(hw * 1.6, uni(1.8, 4.5) * scale)
        on = rng.random(n) < 0.6
        disc(COPPER, vx, vy, r, on=on)
        disc(DRILL, vx, vy, r * uni(0.35, 0.6), on=on)

    # -- a copper plane over a corner region, with clearance around nothing (a pour) --------------------------------
    plane = rng.random(n) < 0.25
    half_x, half_y = uni(0.15, 0.45) * s, uni(0.15, 0.45) * s
    corner_x = np.where(rng.random(n) < 0.5, half_x - 0.05 * s, s - half_x + 0.05 * s)
    corner_y = np.where(rng.random(n) < 0.5, half_y - 0.05 * s, s - half_y + 0.05 * s)
    rect(COPPER, corner_x, corner_y, half_x, half_y, np.zeros(n), on=plane)
    chamfer = plane & (rng.random(n) < 0.5)  # a 45-degree edge on the pour
    rect(COPPER, corner_x, corner_y, (half_x + half_y) * 0.7, np.minimum(half_x, half_y) * 0.7 + 1,
         rng.choice([45, 135], n), on=chamfer)

    # -- SMD footprints: two pads, a body across them (AOI boards) ------------------------------------------------
    bodies = {key: np.zeros((n, FOOTPRINTS), dtype=f32) for key in ("cx", "cy", "hx", "hy", "on")}
    for f in range(FOOTPRINTS):
        on = rng.random(n) < (0.8 if components else 0.35)
        fx, fy = uni(0.2, 0.8) * s, uni(0.2, 0.8) * s
        vertical = rng.random(n) < 0.5
        pad_l, pad_w = uni(2.0, 5.0) * scale, uni(2.5, 6.0) * scale
        pitch = pad_l * 2 + uni(2.0, 10.0) * scale
        dx, dy = np.where(vertical, 0, pitch / 2), np.where(vertical, pitch / 2, 0)
        ang = np.where(vertical, 90, 0)
        for sign in (-1, 1):
            rect(COPPER, fx + sign * dx, fy + sign * dy, pad_l, pad_w, ang, on=on)
        if components:
            has_body = on & (rng.random(n) < 0.85)
            b_len, b_wid = pitch / 2 + pad_l * uni(-0.3, 0.6), pad_w * uni(1.0, 1.5)
            hx, hy = np.where(vertical, b_wid, b_len), np.where(vertical, b_len, b_wid)
            rect(BODY, fx, fy, hx, hy, np.zeros(n), on=has_body)
            bodies["cx"][:, f], bodies["cy"][:, f], bodies["hx"][:, f], bodies["hy"][:, f] = fx, fy, hx, hy
            bodies["on"][:, f] = has_body

    # -- text: up to GLYPHS seven-segment characters, in copper (bare boards) or silkscreen (AOI boards) --------------
    text = rng.random(n) < (0.6 if components else copper_text)
    text_layer = SILK if components else COPPER
    gw = uni(3.0, 7.0) * scale
    stroke = (gw * uni(0.12, 0.22)).clip(0.5)
    tx, ty = uni(0.05, 0.7) * s, uni(0.05, 0.75) * s
    for g in range(GLYPHS):
        ox = tx + g * gw * 1.7
        glyph_on = text & (rng.random(n) < 0.9)
        for (ux, uy, horizontal) in _SEGMENTS:
            seg_on = glyph_on & (rng.random(n) < 0.6)
            ang = np.full(n, 0 if horizontal else 90)
            rect(text_layer, ox + ux * gw, ty + uy * gw, gw / 2 + stroke, stroke, ang, on=seg_on)

    mats = np.zeros((n, N_MATERIALS, size, size), dtype=np.float32)
    for m in range(N_MATERIALS):
        if rects[m]:
            cx, cy, hl, hw, ang, on = (np.stack(a, axis=1) for a in zip(*rects[m]))
            union(mats[:, m], canvas.rect_layer(cx, cy, hl, hw, ang, on))
        if discs[m]:
            cx, cy, r, on = (np.stack(a, axis=1) for a in zip(*discs[m]))
            union(mats[:, m], canvas.disc_layer(cx, cy, r, on))
    subtract(mats[:, COPPER], mats[:, DRILL])
    return Layout(mats, tr, bodies, scale)
