"""Build the bundled pretrained weights: the default Compact network trained on synthetic pairs only.

    python -m optical_inspection.models.pretrain [--steps 3000] [--threads 2] \
        [--out optical_inspection/models/pretrained]

Deterministic for a given thread count (fixed seeds, fixed step count, no wall-clock budget; same bytes). The
defaults (3 x 3000 pairs, 3000 steps of 64) take 3.5 minutes on 2 idle CPU cores (209 s, 32 s of it generating
the pairs).
The pairs come from :mod:`optical_inspection.data.synth`, in three groups that take turns batch by batch:
binarised bare boards (DeepPCB-like, one light), grey AOI tiles under two lights and colour AOI tiles under two
lights, each tile ``--size`` px. Training pairs are flipped/rotated (both images), shifted against each other
(test image, up to 2 px) and, for the binary and grey groups, inverted at random (either polarity). The threshold
stored with the weights is the score at 1 % false alarm on fresh synthetic PASS pairs of every group. Writes
``compact_synthetic.pth``, its ``.sha256`` and its ``.json`` sidecar.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config.dataset import AugmentationConfig
from ..data.synth import generate_pairs
from . import bundled
from .checkpoint import save_checkpoint
from .factory import Network, build_network
from .metrics import auroc, recall_at_false_alarm, threshold_at_false_alarm

log = logging.getLogger(__name__)
GROUPS = (("binary", 1), ("grey", 2), ("rgb", 2))
_AUG = AugmentationConfig()
MEAN = torch.tensor(_AUG.rgb_input_mean).view(1, 3, 1, 1)
STD = torch.tensor(_AUG.rgb_input_std).view(1, 3, 1, 1)


def make_pool(n: int, size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """One pool per group: uint8 strips test/golden [n, C, L*size, size] (C 1 or 3) and labels [n]."""
    pools = []
    for g, (style, lights) in enumerate(GROUPS):
        batch = generate_pairs(n, size=size, style=style, n_lights=lights, defect_rate=0.5, seed=seed * 10 + g)

        def strip(tiles: np.ndarray) -> torch.Tensor:  # [B, L, S, S, C] -> [B, C, L*S, S]
            t = torch.from_numpy(tiles).permute(0, 4, 1, 2, 3)
            return t.reshape(t.shape[0], t.shape[1], -1, t.shape[-1]).contiguous()

        pools.append({"test": strip(batch.test), "golden": strip(batch.golden),
                      "label": torch.tensor([lab != "PASS" for lab in batch.labels], dtype=torch.float32),
                      "invert": torch.tensor(style != "rgb")})
    return pools


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 or float-in-[0, 255] [B, C, H, W] (C 1 or 3) -> the trainer's normalised RGB input."""
    x = x.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x - MEAN) / STD


def augment(test: torch.Tensor, golden: torch.Tensor, invert: bool, gen: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-preserving: the same flip/rot90 (square tiles only) and inversion for both images, and a shift of
    the test image (replicated border) of up to 2 px."""
    if torch.rand(1, generator=gen) < 0.5:
        test, golden = test.flip(-1), golden.flip(-1)
    if torch.rand(1, generator=gen) < 0.5:
        test, golden = test.flip(-2), golden.flip(-2)
    if test.shape[-1] == test.shape[-2] and torch.rand(1, generator=gen) < 0.5:
        test, golden = test.transpose(-1, -2), golden.transpose(-1, -2)
    test, golden = test.float(), golden.float()
    if invert:
        flip = (torch.rand(test.shape[0], generator=gen) < 0.5).view(-1, 1, 1, 1)
        test, golden = torch.where(flip, 255 - test, test), torch.where(flip, 255 - golden, golden)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    if dx or dy:
        padded = F.pad(test, (2, 2, 2, 2), mode="replicate")
        h, w = test.shape[-2:]
        test = padded[..., 2 + dy:2 + dy + h, 2 + dx:2 + dx + w]
    return test, golden


def evaluate(model: Network, pools: list[dict[str, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of every pair of every pool (eval mode)."""
    model.eval()
    scores, labels = [], []
    with torch.inference_mode():
        for pool in pools:
            for i in range(0, len(pool["label"]), 256):
                scores.append(model.score(normalise(pool["test"][i:i + 256]),
                                          normalise(pool["golden"][i:i + 256])).numpy())
                labels.append(pool["label"][i:i + 256].numpy())
    model.train()
    return np.concatenate(scores), np.concatenate(labels)


def pretrain(out: Path, *, steps: int, pool_pairs: int, size: int, batch: int, lr: float, seed: int) -> Path:
    """Train and write the bundled weights and their sha256; returns the weights' path."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    pools = make_pool(pool_pairs, size, seed)
    held_out = make_pool(max(256, pool_pairs // 8), size, seed + 1)
    log.info("synthetic pools: %d pairs per group in %.0f s", pool_pairs, time.perf_counter() - t0)
    model = build_network(bundled.MODEL, (3, size, size))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        pool = pools[step % len(pools)]
        rows = torch.randint(len(pool["label"]), (batch,), generator=gen)
        test, golden = augment(pool["test"][rows], pool["golden"][rows], bool(pool["invert"]), gen)
        logits = model.score(normalise(test), normalise(golden))
        loss = F.binary_cross_entropy_with_logits(logits, pool["label"][rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % 100 == 0:
            log.info("step %d/%d loss %.4f (%.0f s)", step + 1, steps, loss.item(), time.perf_counter() - t0)
    scores, labels = evaluate(model, held_out)
    threshold = threshold_at_false_alarm(scores[labels == 0], 0.01)
    metrics = {"synthetic_auroc": auroc(scores, labels),
               "synthetic_recall_at_fa_1pct": recall_at_false_alarm(scores, labels, 0.01)}
    log.info("held-out synthetic pairs: AUROC %.4f, recall at 1%% false alarm %.4f", *metrics.values())
    meta = {
        "format_version": 1, "model": {"model_type": "Compact", "margin": 2.0, "embedding_vectors": 5,
                                       "base_channels": bundled.MODEL["base_channels"],
                                       "shift_tolerance": bundled.MODEL["shift_tolerance"], "model_backbone": "custom"},
        "dataset": {"lights": [], "image_height": size, "image_width": size, "concat_type": "linear",
                    "grid_map": {"x": 2, "y": 2}, "strip_shape": [3, size, size],
                    "rgb_input_mean": MEAN.flatten().tolist(), "rgb_input_std": STD.flatten().tolist(),
                    "image_ext": ".jpg"},
        "epoch": 0, "step": steps, "val_epoch": None, "metrics": {k: float(v) for k, v in metrics.items()},
        "threshold": float(threshold),
        "threshold_source": "bundled default: 1 % false alarm on synthetic PASS pairs (calibrate on your own "
                            "validation split for your boards)",
        "target_false_alarm": 0.01, "seed": seed,
        "origin": "synthetic pretraining (optical_inspection.models.pretrain)",
        "pretrain": {"steps": steps, "pool_pairs": pool_pairs, "size": size, "batch": batch, "lr": lr,
                     "groups": [f"{style} x{lights}" for style, lights in GROUPS]},
    }
    out.mkdir(parents=True, exist_ok=True)
    weights = save_checkpoint(out / bundled.WEIGHTS.name, model, meta)
    (out / bundled.DIGEST.name).write_text(f"{bundled.sha256(weights)}  {weights.name}\n", encoding="utf-8")
    log.info("wrote %s (%d bytes) in %.0f s", weights, weights.stat().st_size, time.perf_counter() - t0)
    return weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=bundled.FOLDER)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--pool-pairs", type=int, default=3000, help="synthetic pairs per group")
    parser.add_argument("--size", type=int, default=64, help="tile size in pixels")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[pretrain] %(message)s")
    torch.set_num_threads(args.threads)
    pretrain(args.out, steps=args.steps, pool_pairs=args.pool_pairs, size=args.size, batch=args.batch, lr=args.lr,
             seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
