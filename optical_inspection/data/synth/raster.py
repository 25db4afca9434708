"""Anti-aliased rasterisation of many primitives on a batch of tiles, vectorised over the batch.

Every primitive is a rectangle (centre, half-length along its axis, half-width across it) at 0, 45, 90 or 135
degrees, or a disc. A rectangle's coverage is the product of two 1-D box profiles: along x and y for 0/90 degrees,
along the diagonals ``x + y`` and ``y - x`` for 45/135 degrees (gathered from 1-D arrays), so a primitive costs
a multiply and a max per pixel. Coverage is in [0, 1]; a one-pixel linear ramp anti-aliases the edges.
"""
from __future__ import annotations

import numpy as np

SQRT2 = np.float32(np.sqrt(2.0))


def _profile(coord: np.ndarray, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Box profile ``clip(half + 0.5 - |coord - centre|, 0, 1)``: coord [L], centre/half [B] -> [B, L]."""
    return np.clip(half[:, None] + 0.5 - np.abs(coord[None, :] - centre[:, None]), 0.0, 1.0)


class Canvas:
    """Coordinates of an ``size x size`` tile (pixel centres at integer positions) and the rasterisers."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.axis = np.arange(size, dtype=np.float32)
        yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        self.diag_sum = (yy + xx).ravel()            # index into a profile over (x + y), 0 .. 2S-2
        self.diag_diff = (yy - xx + size - 1).ravel()  # index into a profile over (y - x), 0 .. 2S-2
        self.diag_axis = np.arange(2 * size - 1, dtype=np.float32)

    def rects(self, cx: np.ndarray, cy: np.ndarray, half_len: np.ndarray, half_wid: np.ndarray,
              angle: np.ndarray, on: np.ndarray | None = None) -> np.ndarray:
        """Coverage [B, S, S] of one rectangle per tile; ``angle`` in {0, 45, 90, 135} degrees (per tile);
        tiles where ``on`` is false get nothing (and cost nothing)."""
        b, s = len(cx), self.size
        out = np.zeros((b, s, s), dtype=np.float32)
        flat = out.reshape(b, s * s)
        ang = np.broadcast_to(np.asarray(angle), (b,)) % 180
        live = np.ones(b, dtype=bool) if on is None else np.asarray(on, dtype=bool)
        straight = (ang == 0) | (ang == 90)
        if (straight & live).any():
            i = np.nonzero(straight & live)[0]
            horiz = ang[i] == 0
            hx = np.where(horiz, half_len[i], half_wid[i])
            hy = np.where(horiz, half_wid[i], half_len[i])
            px = _profile(self.axis, cx[i], hx)
            py = _profile(self.axis, cy[i], hy)
            out[i] = py[:, :, None] * px[:, None, :]
        if (~straight & live).any():
            i = np.nonzero(~straight & live)[0]
            # y points down: a 45-degree rectangle runs along u = (x + y) / sqrt2, a 135-degree one along
            # v = (y - x) / sqrt2
            along45 = ang[i] == 45
            hu = np.where(along45, half_len[i], half_wid[i])
            hv = np.where(along45, half_wid[i], half_len[i])
            pu = _profile(self.diag_axis / SQRT2, (cx[i] + cy[i]) / SQRT2, hu)
            pv = _profile((self.diag_axis - (s - 1)) / SQRT2, (cy[i] - cx[i]) / SQRT2, hv)
            flat[i] = pu[:, self.diag_sum] * pv[:, self.diag_diff]
        return out

    def discs(self, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, on: np.ndarray | None = None
              ) -> np.ndarray:
        """Coverage [B, S, S] of one disc per tile (nothing where ``on`` is false)."""
        b, s = len(cx), self.size
        out = np.zeros((b, s, s), dtype=np.float32)
        i = np.arange(b) if on is None else np.nonzero(on)[0]
        if len(i):
            dx = self.axis[None, None, :] - cx[i, None, None]
            dy = self.axis[None, :, None] - cy[i, None, None]
            out[i] = np.clip(radius[i, None, None] + 0.5 - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)
        return out


    def rect_layer(self, cx: np.ndarray, cy: np.ndarray, half_len: np.ndarray, half_wid: np.ndarray,
                   angle: np.ndarray, on: np.ndarray) -> np.ndarray:
        """Coverage [B, S, S] of the union of K rectangles per tile (arrays [B, K]), as
        ``clip(sum_k profile_y (x) profile_x, 0, 1)``: one batched matrix product for the straight ones and one
        in diagonal coordinates for the 45/135-degree ones (a sum, not a max, only brightens overlapping
        anti-aliased edges)."""
        b, s = cx.shape[0], self.size
        ang = np.broadcast_to(np.asarray(angle), cx.shape) % 180
        live = np.asarray(on, dtype=bool)
        straight = (ang == 0) | (ang == 90)
        horiz = ang == 0
        w = (live & straight).astype(np.float32)
        hx, hy = np.where(horiz, half_len, half_wid), np.where(horiz, half_wid, half_len)
        px = _profile2(self.axis, cx, hx) * w[..., None]   # [B, K, S]
        py = _profile2(self.axis, cy, hy)
        out = np.einsum("bky,bkx->byx", py, px, optimize=True)
        diag = live & ~straight
        if diag.any():
            along45 = ang == 45
            hu, hv = np.where(along45, half_len, half_wid), np.where(along45, half_wid, half_len)
            pu = _profile2(self.diag_axis / SQRT2, (cx + cy) / SQRT2, hu) * diag[..., None].astype(np.float32)
            pv = _profile2((self.diag_axis - (s - 1)) / SQRT2, (cy - cx) / SQRT2, hv)
            uv = np.einsum("bku,bkv->buv", pu, pv, optimize=True).reshape(b, -1)
            out += uv[:, self.diag_sum * (2 * s - 1) + self.diag_diff].reshape(b, s, s)
        return np.clip(out, 0.0, 1.0, out=out)

    def disc_layer(self, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, on: np.ndarray) -> np.ndarray:
        """Coverage [B, S, S] of the union of K discs per tile (arrays [B, K]); only the live ones cost."""
        b, s = cx.shape[0], self.size
        order = np.argsort(~np.asarray(on, dtype=bool), axis=1, kind="stable")  # live discs first
        k = int(np.asarray(on, dtype=bool).sum(1).max(initial=0))
        out = np.zeros((b, s, s), dtype=np.float32)
        if k == 0:
            return out
        pick = lambda a: np.take_along_axis(a, order[:, :k], axis=1)  # noqa: E731
        x, y, r, live = pick(cx), pick(cy), pick(radius), pick(np.asarray(on, dtype=bool))
        r = np.where(live, r, -2.0)
        dx2 = (self.axis[None, None, :] - x[..., None]) ** 2  # [B, k, S]
        dy2 = (self.axis[None, None, :] - y[..., None]) ** 2
        for j in range(k):
            dist = np.sqrt(dy2[:, j, :, None] + dx2[:, j, None, :])
            np.maximum(out, np.clip(r[:, j, None, None] + 0.5 - dist, 0.0, 1.0), out=out)
        return out


def _profile2(coord: np.ndarray, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Box profiles [B, K, L] for centres/halves [B, K]."""
    return np.clip(half[..., None] + 0.5 - np.abs(coord - centre[..., None]), 0.0, 1.0).astype(np.float32)


def union(layer: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``layer = max(layer, coverage)`` in place."""
    return np.maximum(layer, coverage, out=layer)


def subtract(layer: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``layer = min(layer, 1 - coverage)`` in place."""
    return np.minimum(layer, 1.0 - coverage, out=layer)
