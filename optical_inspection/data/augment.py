"""Batched training augmentation of pairs: one random draw per pair, shared by its test image, its golden and
every light, so a pair stays aligned (except ``random_shift``, which moves the test image against its golden, and,
with ``photometric_per_side``, blur and colour, drawn for each image of the pair on its own: a second camera).

Works on whole batches of tiles ``[B, N, C, H, W]`` with torch ops (one ``grid_sample`` for flips, rotation,
crop and shift; shifted sums for blur; one 3x3 matrix per pair for colour), fixing TAO's quirks: colour jitter
applied with ``color_probability`` as written, crop and blur each with probability 0.5 (TAO: always), every angle of
``angle_list`` used (TAO: the first 3), bilinear sampling throughout (TAO: bicubic in training only).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ..config.dataset import AugmentationConfig

CROP_PROBABILITY = 0.5
BLUR_PROBABILITY = 0.5
MIN_CROP_SIDE = math.sqrt(0.8)  # TAO's RandomResizedCrop area scale (0.8, 1.2), square, clipped to the tile
BLUR_RADIUS = 3  # kernel 7: covers 3 sigma for sigma < 1 (TAO's blur radius ~ U[0, 1))
_LUMA = torch.tensor([0.299, 0.587, 0.114])
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


class PairAugmenter:
    """``augmenter(test_u8, golden_u8) -> (test, golden)`` float32 in [0, 1], shapes ``[B, N, C, H, W]`` (C 1 or 3).

    Random draws are made on the CPU (``generator``); the images stay on their device (CPU or GPU)."""

    def __init__(self, aug_cfg: AugmentationConfig) -> None:
        self.cfg = aug_cfg
        self.angles = torch.tensor([float(a) for a in aug_cfg.random_rotate.angle_list], dtype=torch.float32)

    def __call__(self, test: torch.Tensor, golden: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        test, golden, _ = self.with_masks(test, golden, None, generator)
        return test, golden

    def with_masks(self, test: torch.Tensor, golden: torch.Tensor, masks: torch.Tensor | None,
                   generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """As a call, and moves ``masks`` (uint8 ``[B, M, H, W]``, label maps of the test image) with the test
        image's geometry (nearest neighbour): they stay on the pixels they label."""
        x = torch.stack([test, golden], dim=1).float().div_(255.0)  # [B, 2, N, 3, H, W]
        x, theta = self._geometric(x, generator)
        if masks is not None and theta is not None:
            grid = F.affine_grid(theta[:, 0], [len(masks), masks.shape[1], *masks.shape[-2:]], align_corners=False)
            masks = F.grid_sample(masks.float(), grid, mode="nearest", padding_mode="zeros",
                                  align_corners=False).to(masks.dtype)
        if self.cfg.photometric_per_side:  # each side its own draw: [B, 2, ...] -> [2B, 1, ...]
            x = x.reshape(-1, 1, *x.shape[2:])
        if self.cfg.with_random_blur:
            x = self._blur(x, generator)
        if self.cfg.random_color.enable:
            x = self._colour(x, generator)
        x = x.reshape(-1, 2, *x.shape[2:])
        return x[:, 0], x[:, 1], masks

    def _geometric(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flips, rotation, crop and shift: the moved pairs and the sampling matrices [B, 2, 2, 3] (test, golden;
        None when nothing moves)."""
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
            return x, None
        scale = torch.tensor([w / 2, h / 2])
        theta = torch.cat([matrix * scale[None, None, None, :] / scale[None, None, :, None],
                           (offset / scale)[..., None]], dim=-1).to(x.device)  # [B, 2, 2, 3]
        grid = F.affine_grid(theta.reshape(b * 2, 2, 3), [b * 2, n * c, h, w], align_corners=False)
        out = F.grid_sample(x.reshape(b * 2, n * c, h, w), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
        return out.reshape(x.shape), theta

    def _blur(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Separable Gaussian blur of the pairs drawn (probability 0.5), sigma ~ U[0, 1) per pair, computed as
        in-place shifted weighted sums (faster than grouped convolutions on CPU)."""
        b, s, n, c, h, w = x.shape
        on = _coin(b, BLUR_PROBABILITY, gen)
        sigma = _uniform(b, gen).clamp_min(1e-3)
        picked = torch.nonzero(on).flatten()
        if not len(picked):
            return x
        k = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=torch.float32)
        kernel = torch.exp(-(k[None] ** 2) / (2 * sigma[picked, None] ** 2))
        kernel = (kernel / kernel.sum(1, keepdim=True)).view(len(picked), -1, 1, 1, 1).to(x.device)  # [P, K, 1,1,1]
        picked = picked.to(x.device)
        r = BLUR_RADIUS
        padded = F.pad(x[picked].reshape(len(picked), s * n * c, h, w), [r, r, r, r], mode="reflect")
        rows = padded[..., 0:h, :] * kernel[:, 0]
        for i in range(1, 2 * r + 1):
            rows.addcmul_(padded[..., i:i + h, :], kernel[:, i])
        out = rows[..., 0:w] * kernel[:, 0]
        for i in range(1, 2 * r + 1):
            out.addcmul_(rows[..., i:i + w], kernel[:, i])
        x[picked] = out.view(len(picked), s, n, c, h, w)
        return x

    def _colour(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Brightness, contrast, saturation and hue (in that order) fused into one 3x3 colour matrix and one
        offset per pair: saturation blends with the luma, hue rotates the chroma plane of YIQ (both keep grey
        grey), so ``x' = c*b*H*S x + (1-c)*b*mean_luma(x)``, clamped once."""
        cfg = self.cfg.random_color
        b, s, n, c, h, w = x.shape
        on = _coin(b, cfg.color_probability, gen)

        def factor(spread: float) -> torch.Tensor:
            """1 for pairs not jittered, else ~ U[max(0, 1 - spread), 1 + spread]."""
            return torch.where(on, (1 + spread * (2 * _uniform(b, gen) - 1)).clamp_min(0), torch.ones(b))

        bright, contrast, sat = factor(cfg.brightness), factor(cfg.contrast), factor(cfg.saturation)
        turn = torch.where(on, cfg.hue * (2 * _uniform(b, gen) - 1), torch.zeros(b)) * (2 * math.pi)
        mean_luma = _grey(x).mean(dim=(-2, -1), keepdim=True)  # [B, S, N, 1, 1, 1]
        offset = ((1 - contrast) * bright).view(b, 1, 1, 1, 1, 1).to(x.device) * mean_luma
        gain = (contrast * bright).view(b, 1, 1)
        if c == 1:  # grey tiles: saturation and hue change nothing
            return (x * gain.view(b, 1, 1, 1, 1, 1).to(x.device) + offset).clamp_(0, 1)
        eye = torch.eye(3).expand(b, 3, 3)
        saturation = sat.view(b, 1, 1) * eye + (1 - sat).view(b, 1, 1) * _LUMA.view(1, 1, 3).expand(b, 3, 3)
        cos, sin = torch.cos(turn), torch.sin(turn)
        rot = eye.clone()
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        matrix = (gain * (_YIQ_TO_RGB @ rot @ _RGB_TO_YIQ @ saturation)).to(x.device)  # [B, 3, 3]
        out = matrix[:, None] @ x.reshape(b, s * n, 3, h * w)
        return (out.view(x.shape) + offset).clamp_(0, 1)


def _coin(n: int, p: float, gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def _uniform(shape: int | tuple[int, ...], gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=gen)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``[..., 1, H, W]`` of RGB ``[..., 3, H, W]`` (grey ``[..., 1, H, W]`` is its own luma)."""
    if x.shape[-3] == 1:
        return x
    return (x * _LUMA.view(3, 1, 1).to(x.device)).sum(-3, keepdim=True)
