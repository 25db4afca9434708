"""Between a test image and its golden: misregistration (sub-pixel to a few pixels of shift, small rotation and
scale, one bilinear warp per tile) and photometric differences (gain, offset, blur, noise, JPEG)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def random_affines(rng: np.random.Generator, n: int, max_shift: float = 3.0, max_rotation_deg: float = 0.4,
                   max_scale: float = 0.006) -> np.ndarray:
    """[n, 2, 3] maps from output pixel (x, y) to source pixel, about the tile centre."""
    theta = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, n))
    scale = 1.0 + rng.uniform(-max_scale, max_scale, n)
    shift = rng.uniform(-max_shift, max_shift, (n, 2)) * rng.uniform(0.1, 1.0, (n, 1))
    cos, sin = np.cos(theta) * scale, np.sin(theta) * scale
    return np.stack([np.stack([cos, -sin, shift[:, 0]], 1), np.stack([sin, cos, shift[:, 1]], 1)], 1
                    ).astype(np.float32)


def warp(images: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Bilinear warp of float images [B, C, S, S] (edge-clamped), one affine per tile."""
    b, c, h, w = images.shape
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32) - (h - 1) / 2, np.arange(w, dtype=np.float32) - (w - 1) / 2,
                         indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()])  # [2, HW]
    src = (affines[:, :, :2] @ pts + affines[:, :, 2:]).astype(np.float32)  # [B, 2, HW]
    sx = np.clip(src[:, 0] + (w - 1) / 2, 0, w - 1)
    sy = np.clip(src[:, 1] + (h - 1) / 2, 0, h - 1)
    x0, y0 = np.minimum(sx.astype(np.int64), w - 2), np.minimum(sy.astype(np.int64), h - 2)
    fx, fy = (sx - x0).astype(np.float32)[..., None], (sy - y0).astype(np.float32)[..., None]
    flat = np.ascontiguousarray(images.reshape(b, c, h * w).transpose(0, 2, 1))  # [B, HW, C]: gather rows
    rows = np.arange(b)[:, None]
    base = y0 * w + x0

    def at(offset: int) -> np.ndarray:
        return flat[rows, base + offset]

    top = at(0) * (1 - fx) + at(1) * fx
    bottom = at(w) * (1 - fx) + at(w + 1) * fx
    out = (top * (1 - fy) + bottom * fy).astype(np.float32)  # [B, HW, C]
    return out.transpose(0, 2, 1).reshape(b, c, h, w)


def blur(images: np.ndarray, sigma: np.ndarray, radius: int = 2) -> np.ndarray:
    """Separable Gaussian blur of [B, ..., S, S] with one sigma per tile (0 = unchanged)."""
    k = np.arange(-radius, radius + 1, dtype=np.float32)
    weights = np.exp(-(k[None] ** 2) / (2 * np.maximum(sigma, 1e-3)[:, None] ** 2))
    weights /= weights.sum(1, keepdims=True)
    shape = (len(images),) + (1,) * (images.ndim - 1)
    h, w = images.shape[-2:]
    lead = [(0, 0)] * (images.ndim - 2)
    padded = np.pad(images, lead + [(0, 0), (radius, radius)], mode="edge")
    rows = sum(weights[:, i].reshape(shape) * padded[..., i:i + w] for i in range(2 * radius + 1))
    padded = np.pad(rows, lead + [(radius, radius), (0, 0)], mode="edge")
    return sum(weights[:, i].reshape(shape) * padded[..., i:i + h, :] for i in range(2 * radius + 1))


def photometric(rng: np.random.Generator, images: np.ndarray, *, gain: float = 0.12, offset: float = 10.0,
                max_blur: float = 0.9, max_noise: float = 5.0) -> np.ndarray:
    """Gain, offset (per tile and light), blur and Gaussian noise on float images [B, L, C, S, S] in 0..255."""
    b, n_lights = images.shape[:2]
    g = rng.uniform(1 - gain, 1 + gain, (b, n_lights, 1, 1, 1)).astype(np.float32)
    o = rng.uniform(-offset, offset, (b, n_lights, 1, 1, 1)).astype(np.float32)
    sigma = rng.uniform(0.0, max_blur, (b,)).astype(np.float32) * (rng.random(b) < 0.6)
    noise = rng.uniform(0.0, max_noise, (b, 1, 1, 1, 1)).astype(np.float32)
    out = blur(images, sigma) * g + o
    return out + noise * rng.standard_normal(images.shape, dtype=np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def jpeg(rng: np.random.Generator, images: np.ndarray, probability: float = 0.5, quality: tuple[int, int] = (60, 95)
         ) -> np.ndarray:
    """JPEG round trip of uint8 tiles [B, L, S, S, C] at a random quality, per tile with ``probability``
    (the one per-image loop: the codec works image by image)."""
    out = images.copy()
    picked = np.nonzero(rng.random(len(images)) < probability)[0]
    qualities = rng.integers(quality[0], quality[1] + 1, len(images))
    for i in picked:
        for light in range(images.shape[1]):
            tile = images[i, light]
            img = Image.fromarray(tile[..., 0] if tile.shape[-1] == 1 else tile)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=int(qualities[i]))
            decoded = np.asarray(Image.open(buf))
            out[i, light] = decoded.reshape(tile.shape)
    return out
