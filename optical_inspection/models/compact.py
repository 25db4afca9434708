"""Our default network: a compact comparison network that tolerates a few pixels of misregistration.

Design (why, in short):
* One shared convolutional encoder (two stride-2 convs, then one more conv; c/2, c, c channels) turns each strip
  into a 1/4-resolution feature map. Comparing few channels at 1/4 resolution keeps the element-wise work small:
  on CPU that, not the convolutions, dominates the cost of such a small network.
  Test and golden go through it in ONE batch, so BatchNorm sees the same statistics for both (TAO's two passes
  give them different statistics in training). Parameters do not grow with the image size.
* The comparison is explicit and shift tolerant: a test feature only counts as different when it lies outside the
  [min, max] range of the golden features in a (2t+1)² neighbourhood (t = ``shift_tolerance`` feature cells, 4 px
  each), and symmetrically for golden features missing from the test. Misregistered but identical boards give ~0;
  extra copper (shorts, spurs) and missing copper (opens, pin holes) give large values. The plain |f_t − f_g| is
  kept as a third input so the head can still use exact alignment when it exists.
* A small head (1×1 conv, strided 3×3 conv) and global max + mean pooling give one logit per pair: defects are
  local, so the max pool lets one bad spot decide. The score is that logit (larger = more defective,
  0 = probability 0.5), trained with binary cross-entropy.
* With ``num_types`` (the training labels name two or more defect kinds) a second linear layer on the same pooled
  features gives one logit per kind (cross-entropy on the defective pairs whose kind is known): the defect's type
  comes almost free, and the score path is unchanged.
* With ``dense_map`` a 1×1 convolution on the head's map gives a defect logit per cell (1/8 resolution): trained
  on the cells known to hold a defect (labelled boxes, synthetic defects' masks) or known clean (every cell of a
  PASS pair), it is the heat map and the source of whole-board boxes (their kinds stay the type head's: per-cell
  kinds from this layer typed DeepPCB's boxes far worse, mAP 0.67 vs 0.85). Without it the map is read off the
  pair classifier (:meth:`Compact.cell_map`).
* With ``box_typer`` a separate small classifier names the kind of each whole-board box from a patch centred on it
  (:mod:`.box_typer`), trained before the pair network on the kinds of the training boxes.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .box_typer import BoxTyper

DENSE_PRIOR_LOGIT = -4.0  # a cell holds a defect with probability ~2 % (RetinaNet's initialisation)


def _conv_bn_relu(c_in: int, c_out: int, *, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Compact(nn.Module):
    """Shared encoder → shift-tolerant feature comparison → small head → one logit (the score)."""

    def __init__(self, strip_shape: tuple[int, int, int], base_channels: int = 16, shift_tolerance: int = 1,
                 num_types: int = 0, dense_map: bool = False, box_typer: bool = False) -> None:
        super().__init__()
        self.strip_shape = strip_shape
        self.shift_tolerance = shift_tolerance
        c = base_channels
        self.encoder = nn.Sequential(
            _conv_bn_relu(3, c // 2, stride=2),
            _conv_bn_relu(c // 2, c, stride=2),
            _conv_bn_relu(c, c),
        )
        self.head = nn.Sequential(
            _conv_bn_relu(3 * c, 2 * c, kernel=1),
            _conv_bn_relu(2 * c, 2 * c, stride=2),
        )
        self.classifier = nn.Linear(4 * c, 1)
        self.type_classifier = nn.Linear(4 * c, num_types) if num_types else None
        self.dense = nn.Conv2d(2 * c, 1, 1) if dense_map else None
        # whole-board inspect's classifier of a box's kind (see box_typer.py); never part of the pair's forward
        self.box_typer = BoxTyper(num_types) if box_typer and num_types else None
        if self.dense is not None and self.dense.bias is not None:  # start at the rare-defect prior: the gradient
            nn.init.constant_(self.dense.bias, DENSE_PRIOR_LOGIT)   # goes to the defect cells at once

    def compare(self, feat_test: torch.Tensor, feat_golden: torch.Tensor) -> torch.Tensor:
        """Per-cell differences that ignore shifts up to ``shift_tolerance`` cells."""
        diff = (feat_test - feat_golden).abs()
        if self.shift_tolerance == 0:
            return torch.cat([diff, diff, diff], dim=1)
        pooled = self.training  # training: max_pool2d, whose backward is a cheap index scatter (see window_reduce)
        return torch.cat([
            _outside_neighbourhood(feat_test, feat_golden, self.shift_tolerance, pooled),
            _outside_neighbourhood(feat_golden, feat_test, self.shift_tolerance, pooled),
            diff,
        ], dim=1)

    def mixed(self, input_1: torch.Tensor, input_2: torch.Tensor) -> torch.Tensor:
        """The head's spatial map before pooling: [B, 2c, H'/8, W'/8] (rounded up)."""
        features = self.encoder(torch.cat([input_1, input_2], dim=0))
        # slicing (not chunk) keeps the batch axis symbolic when exported to ONNX with a dynamic batch
        feat_test, feat_golden = features[: input_1.shape[0]], features[input_1.shape[0]:]
        return self.head(self.compare(feat_test, feat_golden))

    def forward(self, input_1: torch.Tensor, input_2: torch.Tensor) -> torch.Tensor:
        """Logit per pair (input_1 = test, input_2 = golden)."""
        return self.score_from_mixed(self.mixed(input_1, input_2))

    def score_from_mixed(self, mixed: torch.Tensor) -> torch.Tensor:
        """The logit [B] from the head's map."""
        return self.classifier(_pooled(mixed)).squeeze(1)

    def types_from_mixed(self, mixed: torch.Tensor) -> torch.Tensor:
        """Defect-kind logits [B, num_types] from the head's map; the network must have a type head."""
        if self.type_classifier is None:
            raise ValueError("this Compact network has no defect-type head (trained without defect kinds)")
        return self.type_classifier(_pooled(mixed))

    def map_from_mixed(self, mixed: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The defect map [B, height, width] in logit units from the head's map (see :meth:`cells`)."""
        return upsample_cells(self.cells(mixed, mixed.mean(dim=(2, 3), keepdim=True)), height, width)

    def cells(self, mixed: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Defect logit per cell [B, H'/8, W'/8]: the dense head's when the network has one, else
        :meth:`cell_map` (``mean``: the channel means it uses)."""
        if self.dense is not None:
            return self.dense_logits(mixed)
        return self.cell_map(mixed, mean)

    def dense_logits(self, mixed: torch.Tensor) -> torch.Tensor:
        """The dense head's defect logit per cell [B, H'/8, W'/8]."""
        if self.dense is None:
            raise ValueError("this Compact network has no dense map head (model.dense_map was off)")
        return self.dense(mixed)[:, 0]

    def score_and_types(self, input_1: torch.Tensor, input_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logit [B], defect-kind logits [B, num_types]); the network must have a type head."""
        mixed = self.mixed(input_1, input_2)
        return self.score_from_mixed(mixed), self.types_from_mixed(mixed)

    def cell_map(self, mixed: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Defect map in logit units at 1/8 resolution: the pair's logit if each cell held the max of every
        channel (``w_max·mixed(x) + w_mean·mean + b``), so the peak cell of a one-spot defect gives its score.
        ``mean``: the channel means to use ([B, 2c, 1, 1] for a strip, a local average for a whole board)."""
        w_max, w_mean = self.classifier.weight[0].split(mixed.shape[1])
        local = torch.einsum("bchw,c->bhw", mixed, w_max)
        return local + torch.einsum("bchw,c->bhw", mean, w_mean) + self.classifier.bias[0]

    def score_and_map(self, input_1: torch.Tensor, input_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logit [B], defect map [B, H', W'] in logit units, bilinearly upsampled to the strip size)."""
        mixed = self.mixed(input_1, input_2)
        return self.score_from_mixed(mixed), self.map_from_mixed(mixed, input_1.shape[2], input_1.shape[3])

    def score(self, input_1: torch.Tensor, input_2: torch.Tensor) -> torch.Tensor:
        """The logit: larger = more defective."""
        return self(input_1, input_2)


def _pooled(mixed: torch.Tensor) -> torch.Tensor:
    """[B, 4c]: global max and mean of the head's map (one bad spot decides through the max)."""
    return torch.cat([mixed.amax(dim=(2, 3)), mixed.mean(dim=(2, 3))], dim=1)


def upsample_cells(cells: torch.Tensor, height: int, width: int, stride: int = 8) -> torch.Tensor:
    """[B, h, w] cell values → [B, height, width] pixels, bilinear, cell i centred on pixel stride·i (where the
    stride-2 'same' convolutions put it); the last cells' values extend over the border."""
    h, w = cells.shape[-2:]
    full = F.interpolate(cells[:, None], size=(stride * (h - 1) + 1, stride * (w - 1) + 1), mode="bilinear",
                         align_corners=True)
    full = F.pad(full, (0, max(0, width - full.shape[-1]), 0, max(0, height - full.shape[-2])), mode="replicate")
    return full[:, 0, :height, :width]


def _outside_neighbourhood(x: torch.Tensor, ref: torch.Tensor, radius: int, pooled: bool = False) -> torch.Tensor:
    """How far each value of ``x`` lies outside the [min, max] of ``ref`` over a (2r+1)² window. ``pooled``: the
    same values through max_pool2d, for training: the backward of the element-wise reductions (tie masks, where,
    divisions) took about half of a training step on CPU, max_pool2d's backward is an index scatter (2x faster
    forward + backward), while its stride-1 forward is slower, so inference and export keep the reductions.
    It pools channels-last: PyTorch's CPU kernel for that layout is ~5x faster forward (the same indices, so the
    same gradients up to summation order): 9 % more training pairs/s on 2 cores."""
    if pooled:
        window = 2 * radius + 1
        ref = ref.contiguous(memory_format=torch.channels_last)
        ref_max = F.max_pool2d(ref, window, stride=1, padding=radius)
        ref_min = -F.max_pool2d(-ref, window, stride=1, padding=radius)
    else:
        ref_max = window_reduce(ref, radius, torch.maximum, float("-inf"))
        ref_min = window_reduce(ref, radius, torch.minimum, float("inf"))
    return F.relu(x - ref_max) + F.relu(ref_min - x)


def window_reduce(x: torch.Tensor, radius: int, reduce: Callable[..., torch.Tensor], fill: float | int
                  ) -> torch.Tensor:
    """Max (or min) over a (2r+1)² window, stride 1, as separable element-wise reductions of shifted views:
    several times faster on CPU than max_pool2d with stride 1, and exported to ONNX as plain Max/Min ops."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (radius, radius, radius, radius), value=fill)
    rows = padded[..., :, :width]
    for shift in range(1, 2 * radius + 1):
        rows = reduce(rows, padded[..., :, shift:shift + width])
    out = rows[..., :height, :]
    for shift in range(1, 2 * radius + 1):
        out = reduce(out, rows[..., shift:shift + height, :])
    return out
