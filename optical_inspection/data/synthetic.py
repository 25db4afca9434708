"""Small synthetic multi-light AOI data for tests and the demo: no download needed.

Each component crop is a board-like scene (substrate, copper traces, two pads, a component body, a via).
Each light renders the same scene with its own palette (low-angle light shows edges, solder light shows metal).
A test image differs from its golden by a small registration shift, a lighting change and noise, and, when
defective, by one defect: ``missing`` component, ``short`` (solder bridge), ``scratch`` or ``spot``.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..io_utils import write_text_atomic

DEFAULT_LIGHTS = ("LowAngleLight", "SolderLight", "UniformLight", "WhiteLight")
DEFECT_KINDS = ("missing", "short", "scratch", "spot")
SUBSTRATE, TRACE, PAD, BODY, VIA = range(5)
# RGB palette per material for each light kind; unknown light names cycle through these.
_PALETTES = (
    [(20, 60, 30), (60, 110, 60), (90, 90, 80), (25, 25, 25), (70, 70, 60)],      # low angle: dim, edges added
    [(30, 70, 40), (150, 120, 60), (235, 230, 215), (40, 40, 45), (200, 190, 170)],  # solder: metal bright
    [(40, 110, 60), (120, 160, 90), (190, 190, 180), (60, 60, 65), (160, 160, 150)],  # uniform
    [(80, 150, 100), (170, 200, 140), (245, 245, 240), (90, 90, 95), (210, 210, 200)],  # white
)


def make_synthetic_split(out_dir: str | Path, n_pairs: int, *, lights: tuple[str, ...] | list[str] = DEFAULT_LIGHTS,
                         size: int = 64, defect_rate: float = 0.3, seed: int = 0) -> tuple[Path, Path]:
    """Write ``out_dir/dataset.csv`` and ``out_dir/images/`` (TAO layout); return (csv_path, images_dir).

    ``lights=()`` writes one image per side without a light suffix. Same arguments, same bytes.
    """
    if n_pairs < 1 or size < 16:
        raise ValueError(f"need n_pairs >= 1 and size >= 16 (got {n_pairs}, {size})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_components = max(2, min(8, n_pairs // 3))
    scenes = [_scene(rng, size) for _ in range(n_components)]
    n_defects = int(round(n_pairs * defect_rate))
    if 0 < defect_rate and n_pairs >= 2:
        n_defects = min(max(n_defects, 1), n_pairs - 1)
    defect_rows = set(rng.permutation(n_pairs)[:n_defects].tolist())

    tmp = out / ".images.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for c, scene in enumerate(scenes):
        _write_views(tmp / "golden", f"C{c}@1", _render(scene, lights, rng, golden=True), lights)
    for i in range(n_pairs):
        c = i % n_components
        board = f"boards/board{i // n_components:03d}"
        kind = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))] if i in defect_rows else None
        scene, kind = _with_defect(scenes[c], kind, rng) if kind else (scenes[c], None)
        _write_views(tmp / board, f"C{c}@1", _render(scene, lights, rng, golden=False), lights)
        rows.append({"input_path": board, "golden_path": "golden", "label": kind or "PASS",
                     "object_name": f"C{c}@1"})
    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    os.replace(tmp, images)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["input_path", "golden_path", "label", "object_name"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = write_text_atomic(out / "dataset.csv", buf.getvalue())
    return csv_path, images


def _scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """Material map ``[size, size]`` of one component: traces, two pads, a body, a via."""
    m = np.full((size, size), SUBSTRATE, dtype=np.uint8)
    s = size
    for _ in range(int(rng.integers(2, 5))):  # traces
        w = max(1, s // 24)
        if rng.random() < 0.5:
            y = int(rng.integers(w, s - w))
            m[y - w:y + w, :] = TRACE
        else:
            x = int(rng.integers(w, s - w))
            m[:, x - w:x + w] = TRACE
    bw, bh = int(s * rng.uniform(0.25, 0.4)), int(s * rng.uniform(0.15, 0.3))
    cy, cx = s // 2 + int(rng.integers(-s // 10, s // 10 + 1)), s // 2 + int(rng.integers(-s // 10, s // 10 + 1))
    pw = max(2, bw // 3)
    m[cy - bh // 2:cy + bh // 2, cx - bw // 2 - pw:cx - bw // 2 + pw // 2] = PAD
    m[cy - bh // 2:cy + bh // 2, cx + bw // 2 - pw // 2:cx + bw // 2 + pw] = PAD
    m[cy - bh // 2:cy + bh // 2, cx - bw // 2:cx + bw // 2] = BODY
    vy, vx = int(rng.integers(2, s // 5)), int(rng.integers(2, s - 2))
    m[vy - 2:vy + 2, vx - 2:vx + 2] = VIA
    return m


def _with_defect(scene: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A copy of ``scene`` with one defect and its kind (``missing`` becomes ``spot`` on a scene without a body);
    scratches and spots are painted as extra materials."""
    m = scene.copy()
    s = m.shape[0]
    if kind == "missing":
        m[m == BODY] = SUBSTRATE
        if not (scene == BODY).any():
            kind = "spot"
    if kind == "short":
        ys, xs = np.nonzero(scene == PAD)
        y = int(ys.mean()) if len(ys) else s // 2
        x0, x1 = (int(xs.min()), int(xs.max())) if len(xs) else (s // 4, 3 * s // 4)
        m[max(0, y - max(1, s // 32)):y + max(1, s // 32) + 1, x0:x1 + 1] = PAD
    elif kind == "scratch":
        t = np.linspace(0, 1, 4 * s)
        y0, x0, y1, x1 = rng.integers(0, s, 4)
        ys, xs = (y0 + (y1 - y0) * t).astype(int), (x0 + (x1 - x0) * t).astype(int)
        m[ys, xs] = 5
        m[np.clip(ys + 1, 0, s - 1), xs] = 5
    elif kind == "spot":
        r = max(2, s // 12)
        cy, cx = rng.integers(r, s - r, 2)
        yy, xx = np.ogrid[:s, :s]
        m[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 6
    return m, kind


def _render(scene: np.ndarray, lights, rng: np.random.Generator, *, golden: bool) -> list[np.ndarray]:
    """One RGB uint8 image per light (one image when ``lights`` is empty)."""
    shift = (0, 0) if golden else tuple(int(v) for v in rng.integers(-1, 2, 2))
    m = np.roll(scene, shift, axis=(0, 1))
    gain = 1.0 if golden else float(rng.uniform(0.9, 1.1))
    offset = 0.0 if golden else float(rng.uniform(-8, 8))
    edges = (np.abs(np.diff(m.astype(np.int16), axis=0, prepend=m[:1])) +
             np.abs(np.diff(m.astype(np.int16), axis=1, prepend=m[:, :1]))) > 0
    views = []
    for k in range(max(1, len(lights))):
        palette = np.array(_PALETTES[k % len(_PALETTES)] + [(225, 225, 225), (10, 10, 10)], dtype=np.float32)
        img = palette[m]
        if k % len(_PALETTES) == 0:
            img = img + 90.0 * edges[..., None]
        img = img * gain + offset + rng.normal(0, 3.0, img.shape)
        views.append(np.clip(img, 0, 255).astype(np.uint8))
    return views


def _write_views(folder: Path, object_name: str, views: list[np.ndarray], lights) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{object_name}_{light}.jpg" for light in lights] if lights else [f"{object_name}.jpg"]
    for name, view in zip(names, views):
        Image.fromarray(view).save(folder / name, quality=95)
