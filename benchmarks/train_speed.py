"""Training speed (pairs/s) of the trainer itself, on CPU or GPU, on generated data (no download needed).

Generates a synthetic split, runs `optical_inspection train` for each model type (accelerator auto: the GPU when
there is one) and reads the per-epoch wall time from status.json. The first epoch (start-up, decoding,
cuDNN autotune) is reported apart from the warm epochs.

    .venv/bin/python benchmarks/train_speed.py                         # Compact and Siamese_3, 4 lights x 128 px
    .venv/bin/python benchmarks/train_speed.py --models Compact --pairs 4096 --batch 128
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from optical_inspection.data.synthetic import DEFAULT_LIGHTS, make_synthetic_split  # noqa: E402
from optical_inspection.status import read_status  # noqa: E402


def seconds(text: str) -> float:
    """'H:MM:SS.ffffff' (str(timedelta)) → seconds."""
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def train_once(model: str, csv: Path, images: Path, args: argparse.Namespace, out: Path) -> dict:
    results = out / model
    spec = {
        "results_dir": str(results),
        "model": {"model_type": model},
        "dataset": {
            "train_dataset": {"csv_path": str(csv), "images_dir": str(images)},
            "validation_dataset": {"csv_path": str(csv), "images_dir": str(images)},
            "input_map": {name: i for i, name in enumerate(DEFAULT_LIGHTS[: args.lights])} or None,
            "image_height": args.size, "image_width": args.size, "batch_size": args.batch,
            "workers": args.workers if args.workers == "auto" else int(args.workers), "fpratio_sampling": 0.5,
        },
        "train": {"num_epochs": args.epochs, "validation_interval": args.epochs, "checkpoint_interval": args.epochs,
                  "progress_bar": False},
    }
    path = out / f"{model}.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "optical_inspection", "train", "-e", str(path)],
                          capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        return {"model": model, "error": proc.stderr[-2000:]}
    epochs = [r for r in read_status(results / "train" / "status.json") if "time_per_epoch" in r]
    times = [seconds(r["time_per_epoch"]) for r in epochs]
    steps_per_epoch = args.pairs // args.batch
    pairs = steps_per_epoch * args.batch
    warm = times[1:] or times
    return {"model": model, "epochs": len(times), "first_epoch_s": round(times[0], 2),
            "warm_epoch_s": round(sum(warm) / len(warm), 2),
            "train_pairs_per_s_warm": round(pairs / (sum(warm) / len(warm)), 1), "process_wall_s": round(wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="Compact,Siamese_3")
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--lights", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", default="auto", help="dataset.workers: auto (the default) or a number")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "train_speed"))
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    out = Path(args.out)
    csv, images = make_synthetic_split(out / "data", args.pairs, lights=DEFAULT_LIGHTS[: args.lights],
                                       size=args.size, seed=0)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    rows = [train_once(m, csv, images, args, out) for m in args.models.split(",")]
    report = {"device": device, "pairs": args.pairs, "lights": args.lights, "size": args.size,
              "batch": args.batch, "results": rows}
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
