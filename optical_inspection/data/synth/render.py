"""Material maps -> camera images: binarised bare boards (DeepPCB's look: copper one level, board the other,
either polarity) or multi-light AOI tiles (a palette per light, edge glints under low-angle light), grey or RGB."""
from __future__ import annotations

import numpy as np

# RGB per visible material for each light kind: substrate, copper (under mask), drill, silk, body, mark.
PALETTES = np.array([
    [(20, 60, 30), (60, 110, 60), (10, 10, 10), (120, 120, 110), (25, 25, 25), (200, 200, 190)],    # low angle
    [(30, 70, 40), (170, 140, 70), (15, 15, 15), (200, 200, 190), (40, 40, 45), (230, 225, 210)],   # solder
    [(40, 110, 60), (120, 160, 90), (20, 20, 20), (220, 220, 210), (60, 60, 65), (235, 235, 225)],  # uniform
    [(80, 150, 100), (170, 200, 140), (30, 30, 30), (245, 245, 240), (90, 90, 95), (250, 250, 245)],  # white
], dtype=np.float32)


def binary(copper_cover: np.ndarray, polarity: np.ndarray) -> np.ndarray:
    """Binarised visible copper [B, S, S], float [B, 1, 1, S, S] in {0, 255}: copper white where ``polarity`` [B]
    is 1, else black (DeepPCB: black copper on white)."""
    copper = copper_cover >= 0.5
    img = np.where(polarity[:, None, None].astype(bool), copper, ~copper).astype(np.float32) * 255.0
    return img[:, None, None]


def board_palettes(rng: np.random.Generator, n: int, n_lights: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile palettes [B, L, 6, 3] (one board's colours under each light, randomised per board) and the
    low-angle edge gain [B, L]."""
    base = PALETTES[np.arange(n_lights) % len(PALETTES)]  # [L, 6, 3]
    tint = rng.uniform(0.7, 1.3, (n, 1, 1, 3)).astype(np.float32)  # solder-mask colour of this board
    level = rng.uniform(0.75, 1.25, (n, 1, 6, 1)).astype(np.float32)
    palette = base[None] * level
    palette[:, :, 0] *= tint[:, :, 0]
    palette[:, :, 1] *= tint[:, :, 0] ** 0.5
    dark_mark = rng.random(n) < 0.5  # contamination / scratch: dark or bright
    palette[dark_mark, :, 5] = palette[dark_mark, :, 4] * 0.5
    edge = np.where(np.arange(n_lights) % len(PALETTES) == 0, 110.0, 0.0).astype(np.float32)
    return np.clip(palette, 0, 255), np.broadcast_to(edge, (n, n_lights)) * rng.uniform(0.7, 1.3, (n, 1))


def lights(vis: np.ndarray, palettes: np.ndarray, edge_gain: np.ndarray, colour: bool) -> np.ndarray:
    """AOI tiles, float [B, L, C, S, S] (C = 3 for ``colour``, else 1), of visible layers [B, 5, S, S]
    (copper, drill, silk, body, marks; see :func:`..defects.visible`)."""
    pal = palettes if colour else palettes.mean(-1, keepdims=True)  # [B, L, 6, C]
    img = np.broadcast_to(pal[:, :, 0, :, None, None], pal.shape[:2] + (pal.shape[-1],) + vis.shape[-2:]).copy()
    for m in range(5):
        a = vis[:, None, None, m]
        img += a * (pal[:, :, m + 1, :, None, None] - img)
    height = vis[:, 0] * 0.4 + vis[:, 2] * 0.2 + vis[:, 3]
    grad = np.abs(np.diff(height, axis=-1, prepend=height[..., :1])) + \
        np.abs(np.diff(height, axis=-2, prepend=height[..., :1, :]))
    return img + edge_gain[:, :, None, None, None] * grad[:, None, None]
