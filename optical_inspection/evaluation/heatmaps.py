"""Defect maps of scored pairs: peak and area per pair, and the PNGs evaluate and inference write.

A defect map is float32 [H', W'] in the score's logit units (the strip's size); a pixel counts as defect area
when its value exceeds the decision threshold. Files go to a temp folder first and are renamed into place only
when the whole split has been scored (nothing half-written).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..io_utils import make_temp_dir

OVERLAY_ALPHA = 0.55


def peaks_and_areas(maps: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(peak_x, peak_y, area in pixels) per map of ``maps`` [B, H, W]."""
    flat = maps.reshape(len(maps), -1)
    peak = flat.argmax(axis=1)
    area = (flat > threshold).sum(axis=1)
    return peak % maps.shape[2], peak // maps.shape[2], area


def map_to_uint8(maps: np.ndarray) -> np.ndarray:
    """Probability (sigmoid of the logit map) as uint8 grey, [B, H, W]."""
    return np.round(255.0 / (1.0 + np.exp(-np.clip(maps, -30.0, 30.0)))).astype(np.uint8)


def overlay(test: np.ndarray, golden: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """Test | golden | test with the map in red, side by side (uint8 HWC images, ``grey`` uint8 HW)."""
    alpha = (grey.astype(np.float32) / 255.0 * OVERLAY_ALPHA)[..., None]
    red = np.zeros_like(test, dtype=np.float32)
    red[..., 0] = 255.0
    mixed = np.round(test.astype(np.float32) * (1 - alpha) + red * alpha).astype(np.uint8)
    gap = np.full((test.shape[0], 4, 3), 255, dtype=np.uint8)
    return np.concatenate([test, gap, golden, gap, mixed], axis=1)


class MapWriter:
    """Writes ``<folder>/maps/row_<i>.png`` (grey map) and ``<folder>/overlays/row_<i>.png`` per pair into a
    temp folder; :meth:`commit` moves both folders into place, :meth:`cancel` removes them."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.stage = make_temp_dir(self.folder / "maps")
        (self.stage / "maps").mkdir()
        (self.stage / "overlays").mkdir()

    @staticmethod
    def name(row: int) -> str:
        return f"row_{row:06d}.png"

    def relative_map(self, row: int) -> str:
        return f"maps/{self.name(row)}"

    def write(self, row: int, grey: np.ndarray, test: np.ndarray | None, golden: np.ndarray | None) -> None:
        Image.fromarray(grey).save(self.stage / "maps" / self.name(row), format="PNG")
        if test is not None and golden is not None:
            Image.fromarray(overlay(test, golden, grey)).save(self.stage / "overlays" / self.name(row), format="PNG")

    def commit(self) -> dict[str, str]:
        out = {}
        for sub in ("maps", "overlays"):
            target = self.folder / sub
            shutil.rmtree(target, ignore_errors=True)
            os.replace(self.stage / sub, target)
            out[sub] = str(target)
        shutil.rmtree(self.stage, ignore_errors=True)
        return out

    def cancel(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    def read_grey(self, row: int) -> np.ndarray:
        """A map written earlier in this run (before or after :meth:`commit`)."""
        staged = self.stage / "maps" / self.name(row)
        return np.asarray(Image.open(staged if staged.exists() else self.folder / "maps" / self.name(row)))


class MapCollector:
    """The ``on_maps`` sink of :func:`~.scoring.score_split`: writes each pair's PNGs and keeps its peak and
    area (pixels above ``threshold``)."""

    def __init__(self, writer: MapWriter, threshold: float) -> None:
        self.writer = writer
        self.threshold = threshold
        self.artifacts: dict[str, str] = {}  # the committed folders, once :func:`~.scoring.staged_maps` ends
        self._parts: list[tuple[np.ndarray, ...]] = []

    def __call__(self, rows: np.ndarray, maps: np.ndarray, test: Any, golden: Any) -> None:
        self._parts.append((rows, *peaks_and_areas(maps, self.threshold)))
        grey = map_to_uint8(maps)
        test_hwc, golden_hwc = (hwc_rgb(side) for side in (test, golden))
        for k, row in enumerate(rows.tolist()):
            self.writer.write(row, grey[k], test_hwc[k], golden_hwc[k])

    def columns(self, n_rows: int) -> dict[str, Any]:
        """inference.csv's map columns for rows 0..n_rows-1 (rows never seen keep -1)."""
        out: dict[str, Any] = {"defect_map": [self.writer.relative_map(i) for i in range(n_rows)]}
        for k, name in enumerate(("peak_x", "peak_y", "defect_area"), start=1):
            values = np.full(n_rows, -1, dtype=np.int64)
            for part in self._parts:
                values[part[0]] = part[k]
            out[name] = values
        return out


def hwc_rgb(strips: Any) -> np.ndarray:
    """uint8 [B, C, H, W] tensor/array (C = 1 or 3) → uint8 [B, H, W, 3]."""
    array = strips.numpy() if hasattr(strips, "numpy") else np.asarray(strips)
    return np.ascontiguousarray(np.broadcast_to(array, (array.shape[0], 3, *array.shape[2:])).transpose(0, 2, 3, 1))
