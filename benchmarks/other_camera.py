"""The held-out DeepPCB crops re-taken through another camera on each side, and misregistered: how a trained
model (and its calibrated threshold) holds up.

    python benchmarks/other_camera.py --checkpoint benchmarks/out/se_v1/runs/<cell>/train/oi_model_latest.pth

Recipe (per pair, seeded): the test image and the golden each go through their own random camera: gamma
U(0.7, 1.4), colour tint (per-channel gain U(0.9, 1.1)), contrast U(0.8, 1.2) about mid-grey, gain 1 +- 0.1,
offset +-10, Gaussian blur sigma U(0, 1.2) on 60 % of the images, noise sigma U(0, 6), saved as RGB JPEG at quality
U(60, 95); the test image is also warped by a shift of up to 4 px per axis, a rotation up to 0.4 degrees and a scale
up to 0.6 %. Built from the test groups of ``benchmarks/train_eval.py`` (44000, 92000) into
``benchmarks/out/other_camera`` (git-ignored); then the evaluate action scores it with the checkpoint's own
calibrated threshold. Prints AUROC, recall at 1 % / 0.1 % false alarm and the false alarm at that threshold.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_eval import GROUPS, WINDOW, convert

from optical_inspection.data.synth.misregister import photometric, random_affines, to_uint8, warp

REPO = Path(__file__).resolve().parents[1]
MAX_SHIFT = 4.0
CHUNK = 256


def camera(rng: np.random.Generator, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB [n, S, S, 3] of grey float images [n, S, S] through random cameras, and a JPEG quality each."""
    n = len(grey)
    x = np.repeat(grey[:, None, None], 3, axis=2) / 255.0  # [n, 1, 3, S, S]
    x = 255.0 * x ** rng.uniform(0.7, 1.4, (n, 1, 1, 1, 1))
    x = x * rng.uniform(0.9, 1.1, (n, 1, 3, 1, 1))
    x = 127.5 + (x - 127.5) * rng.uniform(0.8, 1.2, (n, 1, 1, 1, 1))
    x = photometric(rng, x.astype(np.float32), gain=0.1, offset=10.0, max_blur=1.2, max_noise=6.0)
    return np.moveaxis(to_uint8(x)[:, 0], 1, -1), rng.integers(60, 96, n)


def build(src: Path, out: Path, seed: int = 0) -> Path:
    """Write the variant of the split in ``src`` (dataset.csv + images/) under ``out``; return its CSV."""
    csv_path = out / "dataset.csv"
    if csv_path.is_file():
        return csv_path
    with open(src / "dataset.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(seed)
    for start in range(0, len(rows), CHUNK):
        part = rows[start:start + CHUNK]
        test, golden = (np.stack([np.asarray(Image.open(src / "images" / r[col] / f"{r['object_name']}.jpg")
                                             .convert("L"), dtype=np.float32) for r in part])
                        for col in ("input_path", "golden_path"))
        test = warp(test[:, None], random_affines(rng, len(part), max_shift=MAX_SHIFT))[:, 0]
        for col, images in (("input_path", test), ("golden_path", golden)):
            rgb, quality = camera(rng, images)
            for r, img, q in zip(part, rgb, quality):
                path = out / "images" / r[col] / f"{r['object_name']}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(path, format="JPEG", quality=int(q))
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a trained checkpoint, or 'pretrained'")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "other_camera"))
    args = parser.parse_args()
    from optical_inspection.cli import run_action
    from optical_inspection.spec import validate_dict

    out = Path(args.out)
    folders = convert(REPO / "benchmarks" / "out" / "train_eval")
    variant = build(folders["test"], out / "data")
    split = {"csv_path": str(variant), "images_dir": str(out / "data" / "images")}
    results = out / "results" / hashlib.sha256(args.checkpoint.encode()).hexdigest()[:12]
    shutil.rmtree(results, ignore_errors=True)  # one folder per checkpoint, rewritten on each run
    spec = {"results_dir": str(results), "model": {"model_type": "Compact"},
            "dataset": {"test_dataset": split, "input_map": None, "image_height": WINDOW, "image_width": WINDOW},
            "evaluate": {"checkpoint": args.checkpoint, "batch_size": 64}}
    if run_action("evaluate", validate_dict(spec, "evaluate")) != 0:
        sys.exit(f"evaluate failed; see {results}")
    metrics = json.loads((results / "evaluate" / "metrics.json").read_text())
    print(json.dumps({k: metrics[k] for k in ("auroc", "recall_at_fa_1pct", "recall_at_fa_0_1pct", "false_alarm",
                                               "threshold", "num_pairs")}))
    print(f"(groups {GROUPS['test']} re-taken through two cameras, misregistered up to {MAX_SHIFT:g} px)")


if __name__ == "__main__":
    main()
