"""Batched training augmentation of pairs: one random draw per pair, shared by its test image, its golden and
every light, so a pair stays aligned (except ``random_shift``, which moves the test image against its golden).

Works on whole batches of tiles ``[B, N, 3, H, W]`` with torch ops (one ``grid_sample`` for flips, rotation,
crop and shift; grouped convolutions for blur), fixing TAO's quirks: colour jitter applied with
``color_probability`` as written, crop and blur each with probability 0.5 (TAO: always), every angle of
``angle_list`` used (TAO: the first 3), bilinear sampling throughout (TAO: bicubic in training only).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

CROP_PROBABILITY = 0.5
BLUR_PROBABILITY = 0.5
MIN_CROP_SIDE = math.sqrt(0.8)  # TAO's RandomResizedCrop area scale (0.8, 1.2), square, clipped to the tile
BLUR_RADIUS = 3  # kernel 7: covers 3 sigma for sigma < 1 (TAO's blur radius ~ U[0, 1))


class PairAugmenter:
    """``augmenter(test_u8, golden_u8) -> (test, golden)`` float32 in [0, 1], shapes ``[B, N, C, H, W]`` (C 1 or 3)."""

    def __init__(self, aug_cfg: Any) -> None:
        self.cfg = aug_cfg
        self.angles = torch.tensor([float(a) for a in aug_cfg.random_rotate.angle_list], dtype=torch.float32)

    def __call__(self, test: torch.Tensor, golden: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([test, golden], dim=1).float().div_(255.0)  # [B, 2, N, 3, H, W]
        x = self._geometric(x, generator)
        if self.cfg.with_random_blur:
            x = self._blur(x, generator)
        if self.cfg.random_color.enable:
            x = self._colour(x, generator)
        return x[:, 0], x[:, 1]

    def _geometric(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        cfg = self.cfg
        b, _, n, c, h, w = x.shape
        eye = torch.eye(2).expand(b, 2, 2)
        matrix = eye.clone()
        offset = torch.zeros(b, 2)
        active = False
        if cfg.with_random_crop:  # output p -> s * p + c (a zoom-in crop, aspect kept)
            on = _coin(b, CROP_PROBABILITY, gen)
            side = torch.where(on, MIN_CROP_SIDE + (1 - MIN_CROP_SIDE) * _uniform(b, gen), torch.ones(b))
            half = torch.tensor([w / 2, h / 2])
            offset = (1 - side)[:, None] * half * (2 * _uniform((b, 2), gen) - 1)
            matrix = matrix * side[:, None, None]
            active = True
        if cfg.random_rotate.enable and len(self.angles):
            on = _coin(b, cfg.random_rotate.rotate_probability, gen)
            pick = torch.randint(len(self.angles), (b,), generator=gen)
            theta = torch.where(on, self.angles[pick], torch.zeros(b)) * (math.pi / 180)
            cos, sin = torch.cos(theta), torch.sin(theta)
            # sampling for a counter-clockwise turn (image y axis points down): p_in = R p_out
            rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
            matrix, offset = rot @ matrix, (rot @ offset[..., None])[..., 0]
            active = True
        if cfg.random_flip.enable:
            fx = torch.where(_coin(b, cfg.random_flip.hflip_probability, gen), -1.0, 1.0)
            fy = torch.where(_coin(b, cfg.random_flip.vflip_probability, gen), -1.0, 1.0)
            flip = torch.diag_embed(torch.stack([fx, fy], -1))
            matrix, offset = flip @ matrix, (flip @ offset[..., None])[..., 0]
            active = True
        matrix = matrix[:, None].expand(b, 2, 2, 2)
        offset = offset[:, None].repeat(1, 2, 1)
        if cfg.random_shift.enable and cfg.random_shift.max_pixels > 0:
            m = cfg.random_shift.max_pixels
            offset[:, 0] += torch.randint(-m, m + 1, (b, 2), generator=gen).float()
            active = True
        if not active:
            return x
        scale = torch.tensor([w / 2, h / 2])
        theta = torch.cat([matrix * scale[None, None, None, :] / scale[None, None, :, None],
                           (offset / scale)[..., None]], dim=-1).reshape(b * 2, 2, 3)
        grid = F.affine_grid(theta, [b * 2, n * c, h, w], align_corners=False)
        out = F.grid_sample(x.reshape(b * 2, n * c, h, w), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
        return out.reshape(x.shape)

    def _blur(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        b, s, n, c, h, w = x.shape
        sigma = torch.where(_coin(b, BLUR_PROBABILITY, gen), _uniform(b, gen), torch.zeros(b)).clamp_min(1e-3)
        k = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=torch.float32)
        kernel = torch.exp(-(k[None] ** 2) / (2 * sigma[:, None] ** 2))
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(s * n * c, dim=0)  # [B*S*N*C, K]
        groups = b * s * n * c
        flat = F.pad(x.reshape(1, groups, h, w), [BLUR_RADIUS] * 4, mode="reflect")
        flat = F.conv2d(flat, kernel[:, None, :, None], groups=groups)
        flat = F.conv2d(flat, kernel[:, None, None, :], groups=groups)
        return flat.reshape(x.shape)

    def _colour(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        cfg = self.cfg.random_color
        b = x.shape[0]
        on = _coin(b, cfg.color_probability, gen).float()

        def factor(spread: float) -> torch.Tensor:
            f = 1 + spread * (2 * _uniform(b, gen) - 1)
            return (1 + on * (f.clamp_min(0) - 1)).view(b, 1, 1, 1, 1, 1)

        bright, contrast, sat = factor(cfg.brightness), factor(cfg.contrast), factor(cfg.saturation)
        hue = (on * cfg.hue * (2 * _uniform(b, gen) - 1)).view(b, 1, 1, 1, 1)
        x = (x * bright).clamp_(0, 1)
        x = (contrast * x + (1 - contrast) * _grey(x).mean(dim=(-2, -1), keepdim=True)).clamp_(0, 1)
        if x.shape[-3] == 1:  # grey tiles: saturation and hue change nothing
            return x
        x = (sat * x + (1 - sat) * _grey(x)).clamp_(0, 1)
        if cfg.hue > 0:
            x = _shift_hue(x, hue)
        return x


def _coin(n: int, p: float, gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def _uniform(shape: int | tuple[int, ...], gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=gen)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``[..., 1, H, W]`` of RGB ``[..., 3, H, W]`` (grey ``[..., 1, H, W]`` is its own luma)."""
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB ``[..., 3, H, W]`` by ``shift`` (fraction of a turn, broadcast over H, W)."""
    r, g, b = x.unbind(-3)
    maxc, _ = x.max(-3)
    minc, _ = x.min(-3)
    delta = maxc - minc
    safe = delta.clamp_min(1e-8)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    s = delta / maxc.clamp_min(1e-8)
    h = (h + shift) % 1.0
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = maxc * (1 - s), maxc * (1 - s * f), maxc * (1 - s * (1 - f))
    v = maxc
    table = {0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), 5: (v, p, q)}
    out = torch.zeros_like(x)
    for sector, (rr, gg, bb) in table.items():
        mask = (i == sector).unsqueeze(-3)
        out = torch.where(mask, torch.stack([rr, gg, bb], -3), out)
    return out
