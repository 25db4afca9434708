"""Global registration of a golden board onto its test board: translation and a small rotation.

Rotation: the angle (of ``angles``) whose rotated golden gives the sharpest phase-correlation peak against the
test, searched on 1/``factor`` downsampled images in one batched FFT; translation: phase correlation at full
resolution with the chosen rotation, refined to sub-pixel by a parabola through the peak. The golden is then
warped into the test image's frame (bilinear, edges replicated), so detections stay in test-image pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Transform:
    """Golden → test: rotate by ``angle`` degrees about the centre, then shift by (``dx``, ``dy``) pixels."""

    dx: float = 0.0
    dy: float = 0.0
    angle: float = 0.0


def _grey(image: torch.Tensor) -> torch.Tensor:
    """float [..., H, W] from uint8/float [..., C, H, W], zero mean, Hann-windowed (no edge cross in the
    spectrum)."""
    grey = image.float().mean(-3)
    grey = grey - grey.mean(dim=(-2, -1), keepdim=True)
    return grey * _window(*grey.shape[-2:], str(grey.device))


@lru_cache(maxsize=8)
def _window(h: int, w: int, device: str) -> torch.Tensor:
    return torch.hann_window(h, periodic=False, device=device)[:, None] * \
        torch.hann_window(w, periodic=False, device=device)[None, :]


def _affine(angle_deg: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """affine_grid thetas [N, 2, 3] sampling golden at the test pixel's pre-image (normalised coordinates)."""
    a = angle_deg * math.pi / 180.0
    cos, sin = torch.cos(a), torch.sin(a)
    # output pixel p (test frame) samples golden at R^-1 (p - c - t) + c; in normalised units x' = x*w/2 etc.
    sx, sy = 2.0 / w, 2.0 / h
    theta = torch.zeros(len(a), 2, 3, dtype=torch.float32, device=a.device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = sin * h / w
    theta[:, 1, 0] = -sin * w / h
    theta[:, 1, 1] = cos
    tx, ty = -dx * sx, -dy * sy
    theta[:, 0, 2] = cos * tx + sin * ty * h / w
    theta[:, 1, 2] = -sin * tx * w / h + cos * ty
    return theta


def warp(image: torch.Tensor, transform: Transform) -> torch.Tensor:
    """``image`` [C, H, W] (any dtype) moved by ``transform``; same dtype and size, borders replicated."""
    c, h, w = image.shape
    theta = _affine(torch.tensor([transform.angle]), torch.tensor([transform.dx]), torch.tensor([transform.dy]),
                    h, w).to(image.device)
    grid = F.affine_grid(theta, [1, c, h, w], align_corners=False)
    out = F.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    return out.round().clamp(0, 255).to(image.dtype) if image.dtype == torch.uint8 else out.to(image.dtype)


def _correlate(test: torch.Tensor, golden: torch.Tensor) -> torch.Tensor:
    """Phase correlation surfaces [N, H, W] of test [H, W] against golden [N, H, W]; peak at the shift."""
    spec = torch.fft.rfft2(test)[None] * torch.fft.rfft2(golden).conj()
    return torch.fft.irfft2(spec / spec.abs().clamp_min(1e-6), s=test.shape)


def _peak(surface: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(value, dy, dx) of each surface's highest peak, shifts wrapped into [-H/2, H/2)."""
    n, h, w = surface.shape
    value, flat = surface.reshape(n, -1).max(1)
    dy, dx = flat // w, flat % w
    return value, torch.where(dy >= h // 2, dy - h, dy), torch.where(dx >= w // 2, dx - w, dx)


def _subpixel(surface: torch.Tensor, dy: int, dx: int) -> tuple[float, float]:
    """Parabolic refinement of an integer peak of one surface [H, W]."""
    h, w = surface.shape

    def offset(m: float, c: float, p: float) -> float:
        denom = m - 2 * c + p
        return 0.0 if abs(denom) < 1e-12 else max(-0.5, min(0.5, 0.5 * (m - p) / denom))

    c = float(surface[dy % h, dx % w])
    oy = offset(float(surface[(dy - 1) % h, dx % w]), c, float(surface[(dy + 1) % h, dx % w]))
    ox = offset(float(surface[dy % h, (dx - 1) % w]), c, float(surface[dy % h, (dx + 1) % w]))
    return dy + oy, dx + ox


def _best_angle(test: torch.Tensor, golden: torch.Tensor, max_angle: float, step: float) -> float:
    """The candidate angle whose rotated (and phase-correlation shifted) golden leaves the smallest mean squared
    difference to the test over the inner 80 % of the board; a parabola through its neighbours refines it."""
    n = int(round(max_angle / step))
    angles = torch.arange(-n, n + 1, dtype=torch.float32) * step
    c, h, w = golden.shape
    zeros = torch.zeros_like(angles)
    shape = [len(angles), c, h, w]
    grid = F.affine_grid(_affine(angles, zeros, zeros, h, w), shape, align_corners=False)
    rotated = F.grid_sample(golden[None].expand(len(angles), -1, -1, -1), grid, padding_mode="border",
                            align_corners=False)
    _, dy, dx = _peak(_correlate(_grey(test), _grey(rotated)))
    grid = F.affine_grid(_affine(angles, dx.float(), dy.float(), h, w), shape, align_corners=False)
    moved = F.grid_sample(golden[None].expand(len(angles), -1, -1, -1), grid, padding_mode="border",
                          align_corners=False)
    my, mx = h // 10, w // 10
    error = (moved - test[None]).square()[..., my:h - my, mx:w - mx].mean(dim=(1, 2, 3))
    best = int(error.argmin())
    angle = float(angles[best])
    if 0 < best < len(angles) - 1:
        m, e, p = (float(v) for v in error[best - 1:best + 2])
        denom = m - 2 * e + p
        angle += 0.0 if denom <= 1e-12 else step * max(-0.5, min(0.5, 0.5 * (m - p) / denom))
    return angle


def estimate(test: torch.Tensor, golden: torch.Tensor, max_angle: float = 1.5, angle_step: float = 0.25,
             factor: int = 4, shift_factor: int = 2) -> Transform:
    """The golden → test transform of two boards [C, H, W] of the same size (rotation within ±``max_angle``°):
    the angle on 1/``factor`` images, then the shift on 1/``shift_factor`` images (sub-pixel there, so about
    ±0.5 px at full size: within the network's shift tolerance)."""
    angle = 0.0
    if max_angle > 0:
        angle = _best_angle(F.avg_pool2d(test[None].float(), factor)[0],
                            F.avg_pool2d(golden[None].float(), factor)[0], max_angle, angle_step)
    small_t = F.avg_pool2d(test[None].float(), shift_factor)[0] if shift_factor > 1 else test.float()
    small_g = F.avg_pool2d(golden[None].float(), shift_factor)[0] if shift_factor > 1 else golden.float()
    if angle:
        small_g = warp(small_g, Transform(angle=angle))
    surface = _correlate(_grey(small_t), _grey(small_g)[None])
    _, dy, dx = _peak(surface)
    fy, fx = _subpixel(surface[0], int(dy[0]), int(dx[0]))
    return Transform(dx=fx * shift_factor, dy=fy * shift_factor, angle=angle)


def is_negligible(transform: Transform, pixels: float = 0.5, degrees: float = 0.05) -> bool:
    """True when warping would move no pixel by more than about ``pixels`` (skips a full-size resampling)."""
    return abs(transform.dx) < pixels and abs(transform.dy) < pixels and abs(transform.angle) < degrees
