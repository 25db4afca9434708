"""Defects painted on a layout: DeepPCB's six kinds on copper (open, short, mousebite, spur, spurious copper,
pin hole) and AOI kinds (missing or shifted component, scratch, contamination), with their masks and boxes.

Positions are drawn per tile without Python loops over tiles: a random point on a random trace (several
candidates, the first on visible copper wins), or the arg-max of noise over the pixels allowed (empty board,
copper interior). A defect's mask is where it changed what a camera sees (:func:`visible`); one whose change is
below ``MIN_AREA`` pixels (hidden under a body, off the tile) is dropped and its tile stays PASS.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .layout import BODY, COPPER, DIRT, DRILL, SCRATCH, SILK, Layout
from .raster import Canvas, subtract, union

COPPER_KINDS = ("open", "short", "mousebite", "spur", "spurious_copper", "pin_hole")
AOI_KINDS = COPPER_KINDS + ("missing_component", "shifted_component", "scratch", "contamination")
MIN_AREA = 2.0  # pixels of visible change (sum of coverage change) for a defect to count
CANDIDATES = 12


def visible(mats: np.ndarray) -> np.ndarray:
    """What the camera sees of each material, occlusion applied: [B, 5, S, S] (copper, drill, silk, body, marks)."""
    body = mats[:, BODY]
    free = 1.0 - body
    marks = np.maximum(mats[:, SCRATCH], mats[:, DIRT])
    return np.stack([mats[:, COPPER] * free, mats[:, DRILL] * free, mats[:, SILK] * free, body, marks], axis=1)


def visible_copper(mats: np.ndarray) -> np.ndarray:
    """Copper not hidden under a body [B, S, S]."""
    return mats[:, COPPER] * (1.0 - mats[:, BODY])


def window_max(x: np.ndarray, radius: int) -> np.ndarray:
    """Max over a (2r+1)^2 window of [B, S, S] (separable shifted maxima, edge padded)."""
    h, w = x.shape[-2:]
    padded = np.pad(x, [(0, 0), (0, 0), (radius, radius)], mode="edge")
    rows = padded[..., 0:w].copy()
    for i in range(1, 2 * radius + 1):
        np.maximum(rows, padded[..., i:i + w], out=rows)
    padded = np.pad(rows, [(0, 0), (radius, radius), (0, 0)], mode="edge")
    out = padded[:, 0:h].copy()
    for i in range(1, 2 * radius + 1):
        np.maximum(out, padded[:, i:i + h], out=out)
    return out


def _pick_pixel(rng: np.random.Generator, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random allowed pixel per tile: (x, y, found) from [B, S, S] booleans."""
    b, s, _ = allowed.shape
    noise = rng.random((b, s * s), dtype=np.float32) + 1.0
    flat = np.where(allowed.reshape(b, -1), noise, 0.0)
    idx = flat.argmax(1)
    found = flat[np.arange(b), idx] > 0
    return (idx % s).astype(np.float32), (idx // s).astype(np.float32), found


def _trace_points(rng: np.random.Generator, mats: np.ndarray, traces: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A random point on the centre line of a random trace per tile, on visible copper; its direction, normal,
    half width and whether one was found."""
    b, s = mats.shape[0], mats.shape[-1]
    on = traces["on"] > 0
    slot = np.argmax(np.where(on[:, None, :], rng.random((b, CANDIDATES, on.shape[1])), -1.0), axis=2)  # [B, C]
    take = lambda key: np.take_along_axis(traces[key], slot, axis=1)  # noqa: E731
    cx, cy, half, hw, ang = (take(k) for k in ("cx", "cy", "half_len", "half_wid", "angle"))
    t = rng.uniform(-0.85, 0.85, slot.shape).astype(np.float32) * half
    rad = np.deg2rad(ang)
    dx, dy = np.cos(rad).astype(np.float32), np.sin(rad).astype(np.float32)
    px, py = cx + t * dx, cy + t * dy
    inside = (px >= 3) & (px <= s - 4) & (py >= 3) & (py <= s - 4)
    ix, iy = np.clip(np.rint(px), 0, s - 1).astype(int), np.clip(np.rint(py), 0, s - 1).astype(int)
    rows = np.arange(b)[:, None]
    seen = visible_copper(mats)
    ok = inside & np.take_along_axis(on, slot, axis=1) & (seen[rows, iy, ix] > 0.9)
    first = ok.argmax(1)
    pick = lambda a: a[np.arange(b), first]  # noqa: E731
    return {"x": pick(px), "y": pick(py), "dx": pick(dx), "dy": pick(dy), "hw": pick(hw), "angle": pick(ang),
            "found": ok.any(1)}


def _ray_length(mats: np.ndarray, p: dict[str, np.ndarray], sign: np.ndarray, longest: int) -> np.ndarray:
    """Distance from a trace's edge, along its normal (side ``sign``), to the next copper; 0 where none."""
    b, s = mats.shape[0], mats.shape[-1]
    steps = np.arange(1, longest + 1, dtype=np.float32)
    nx, ny = -p["dy"] * sign, p["dx"] * sign
    start = p["hw"] + 1.0
    x = p["x"][:, None] + nx[:, None] * (start[:, None] + steps)
    y = p["y"][:, None] + ny[:, None] * (start[:, None] + steps)
    inside = (x >= 0) & (x <= s - 1) & (y >= 0) & (y <= s - 1)
    ix, iy = np.clip(np.rint(x), 0, s - 1).astype(int), np.clip(np.rint(y), 0, s - 1).astype(int)
    hit = inside & (mats[np.arange(b)[:, None], COPPER, iy, ix] > 0.5)
    return np.where(hit.any(1), steps[hit.argmax(1)] + 1.0, 0.0).astype(np.float32)


def paint(rng: np.random.Generator, mats: np.ndarray, layout: Layout, rows: np.ndarray, kind: str,
          canvas: Canvas) -> np.ndarray:
    """Paint one defect of ``kind`` on the tiles ``rows`` of ``mats`` (in place); returns which got one."""
    sub = mats[rows]
    n = len(rows)
    traces = {k: v[rows] for k, v in layout.traces.items()}
    # defect size follows the board's feature size, loosely (a fine-pitch board still gets 1-px pin holes)
    d = (np.maximum(layout.scale[rows], 1.0) ** 0.7 * rng.uniform(0.7, 1.4, n)).astype(np.float32)
    placed = _PAINTERS[kind](rng, sub, traces, {k: v[rows] for k, v in layout.bodies.items()}, canvas, n, d)
    mats[rows] = sub
    return placed


def _uni(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return rng.uniform(lo, hi, n).astype(np.float32)


def _open(rng, m, traces, bodies, canvas, n, d):
    p = _trace_points(rng, m, traces)
    gap = _uni(rng, 0.6, 2.5, n) * d
    subtract(m[:, COPPER], canvas.rects(p["x"], p["y"], p["hw"] + 1.5, gap, p["angle"] + 90, on=p["found"]))
    return p["found"]


def _mousebite(rng, m, traces, bodies, canvas, n, d):
    p = _trace_points(rng, m, traces)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    r = _uni(rng, 0.8, 2.0, n) * d
    for k in range(3):
        on = p["found"] & (rng.random(n) < (1.0 if k == 0 else 0.5))
        along = (k - 1) * 2.2 * r
        x = p["x"] + p["dx"] * along - p["dy"] * sign * p["hw"]
        y = p["y"] + p["dy"] * along + p["dx"] * sign * p["hw"]
        subtract(m[:, COPPER], canvas.discs(x, y, r, on=on))
    return p["found"]


def _protrusion(rng, m, traces, canvas, n, length, width, d):
    p = _trace_points(rng, m, traces)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    if length is None:  # a short: reach the next copper on one side, else the other, else a long bridge
        reach = _ray_length(m, p, sign, longest=m.shape[-1] // 2)
        other = _ray_length(m, p, -sign, longest=m.shape[-1] // 2)
        sign = np.where((reach == 0) & (other > 0), -sign, sign)
        reach = np.where(reach > 0, reach, other)
        length = np.where(reach > 0, reach, _uni(rng, 6.0, 14.0, n) * d)
    nx, ny = -p["dy"] * sign, p["dx"] * sign
    centre = p["hw"] + length / 2
    union(m[:, COPPER], canvas.rects(p["x"] + nx * centre, p["y"] + ny * centre, length / 2 + 0.5, width,
                                     p["angle"] + 90, on=p["found"]))
    return p["found"]


def _spur(rng, m, traces, bodies, canvas, n, d):
    return _protrusion(rng, m, traces, canvas, n, _uni(rng, 2.0, 6.0, n) * d, _uni(rng, 0.6, 1.6, n) * d, d)


def _short(rng, m, traces, bodies, canvas, n, d):
    return _protrusion(rng, m, traces, canvas, n, None, _uni(rng, 0.6, 2.0, n) * d, d)


def _blob(rng, layer, canvas, x, y, on, lo, hi, n, d):
    for k in range(3):
        r = _uni(rng, lo, hi, n) * d
        off = rng.uniform(-hi, hi, (2, n)).astype(np.float32) * d * (k > 0)
        union(layer, canvas.discs(x + off[0], y + off[1], r, on=on & (rng.random(n) < (1.0 if k == 0 else 0.5))))


def _spurious(rng, m, traces, bodies, canvas, n, d):
    empty = window_max(np.maximum(m[:, COPPER], m[:, BODY]), 3) < 0.05
    x, y, found = _pick_pixel(rng, empty)
    _blob(rng, m[:, COPPER], canvas, x, y, found, 1.0, 3.5, n, d)
    return found


def _pin_hole(rng, m, traces, bodies, canvas, n, d):
    solid = -window_max(-visible_copper(m), 3) > 0.95
    x, y, found = _pick_pixel(rng, solid)
    subtract(m[:, COPPER], canvas.discs(x, y, _uni(rng, 0.8, 2.2, n) * d, on=found))
    return found


def _body_slot(rng, bodies, n):
    on = bodies["on"] > 0
    slot = np.argmax(np.where(on, rng.random(on.shape), -1.0), axis=1)
    pick = lambda key: np.take_along_axis(bodies[key], slot[:, None], axis=1)[:, 0]  # noqa: E731
    return pick("cx"), pick("cy"), pick("hx"), pick("hy"), on.any(1)


def _missing(rng, m, traces, bodies, canvas, n, d):
    cx, cy, hx, hy, found = _body_slot(rng, bodies, n)
    subtract(m[:, BODY], canvas.rects(cx, cy, hx + 0.5, hy + 0.5, np.zeros(n), on=found))
    return found


def _shifted(rng, m, traces, bodies, canvas, n, d):
    cx, cy, hx, hy, found = _body_slot(rng, bodies, n)
    subtract(m[:, BODY], canvas.rects(cx, cy, hx + 0.5, hy + 0.5, np.zeros(n), on=found))
    shift = rng.uniform(2.0, 5.0, (2, n)).astype(np.float32) * d * np.where(rng.random((2, n)) < 0.5, -1, 1)
    shift *= rng.random((2, n)) < 0.7
    union(m[:, BODY], canvas.rects(cx + shift[0], cy + shift[1], hx, hy, np.zeros(n), on=found))
    return found


def _scratch(rng, m, traces, bodies, canvas, n, d):
    s = m.shape[-1]
    x, y = _uni(rng, 0.2, 0.8, n) * s, _uni(rng, 0.2, 0.8, n) * s
    angle = rng.choice([0, 45, 90, 135], n)
    union(m[:, SCRATCH], canvas.rects(x, y, _uni(rng, 0.1, 0.4, n) * s, _uni(rng, 0.3, 0.9, n) * d, angle))
    return np.ones(n, dtype=bool)


def _contamination(rng, m, traces, bodies, canvas, n, d):
    s = m.shape[-1]
    _blob(rng, m[:, DIRT], canvas, _uni(rng, 0.1, 0.9, n) * s, _uni(rng, 0.1, 0.9, n) * s,
          np.ones(n, dtype=bool), 1.5, 4.5, n, d)
    return np.ones(n, dtype=bool)


_PAINTERS: dict[str, Callable[..., np.ndarray]] = {
    "open": _open, "short": _short, "mousebite": _mousebite, "spur": _spur, "spurious_copper": _spurious,
    "pin_hole": _pin_hole, "missing_component": _missing, "shifted_component": _shifted, "scratch": _scratch,
    "contamination": _contamination,
}
