"""`make demo`: the main job end to end on generated AOI data, driven through the agent-facing runner.

Generates small synthetic 4-light train/validation/test splits, then runs, chained by parent job ids only:
train (Compact model, starting from the bundled pretrained weights) → evaluate (best checkpoint) → export (ONNX)
→ inference from the ONNX with ONNX Runtime.
Prints where the metrics, plots and inference.csv are.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from runners import api

from .data.synthetic import make_synthetic_split

LIGHTS = {"LowAngleLight": 0, "SolderLight": 1, "UniformLight": 2, "WhiteLight": 3}
SIZE, PAIRS, MAX_SHIFT = 64, 800, 0.5  # the demo's line: 64-px tiles, registered to half a pixel
EPOCHS, MAX_MINUTES = 30, 1.5  # the time cap ends training first on 2 cores


def make_data(root: Path, size: int, pairs: int, max_shift: float) -> dict[str, Path]:
    """Train/validation/test split folders (dataset.csv + images/), each from a different seed (other boards)."""
    splits = {"train": (pairs, 1), "val": (200, 2), "test": (200, 3)}
    return {name: make_synthetic_split(root / name, n, size=size, defect_rate=0.3, seed=seed,
                                       max_shift=max_shift)[0].parent
            for name, (n, seed) in splits.items()}


def run_step(action: str, jobs_root: Path, **kwargs: Any) -> api.JobRecord:
    start = time.monotonic()
    record = api.run_job(action, jobs_root=jobs_root, **kwargs)
    took = time.monotonic() - start
    print(f"[demo] {action:<9} job {record.id}: {record.status} in {took:.0f} s", flush=True)
    if record.status != "success":
        print(f"[demo] {action} failed: {record.message}\n[demo] log: {record.log_path}", file=sys.stderr)
        raise SystemExit(1)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_results", help="folder for the data and the jobs")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--size", type=int, default=SIZE, help="pixels per light tile")
    parser.add_argument("--pairs", type=int, default=PAIRS, help="training pairs")
    parser.add_argument("--max-shift", type=float, default=MAX_SHIFT,
                        help="largest test-vs-golden misregistration in pixels (a well-registered AOI line: 1)")
    parser.add_argument("--max-minutes", type=float, default=MAX_MINUTES, help="train.max_time_minutes")
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    jobs = out / "oi_jobs"
    data = make_data(out / "data", args.size, args.pairs, args.max_shift)
    print(f"[demo] generated synthetic 4-light splits under {out / 'data'}", flush=True)
    # Everything else is the template default (AdamW, cosine schedule, augmentation, synthetic defects).
    shift = round(args.max_shift)
    train_overrides = {
        "dataset.input_map": LIGHTS, "dataset.image_height": args.size, "dataset.image_width": args.size,
        "model_type": "Compact", "epochs": args.epochs, "train.max_time_minutes": args.max_minutes,
        # the training shift matches the line's registration: the default 3 px (or even 1 px on a line registered
        # to 0.5 px) teaches the network to ignore the 1-2 px opens, spurs and mouse bites
        "dataset.augmentation_config.random_shift.enable": shift > 0,
        "dataset.augmentation_config.random_shift.max_pixels": shift,
    }
    train = run_step("train", jobs, automl_policy="off",
                     data={"train_datasets": data["train"], "eval_dataset": data["val"]}, overrides=train_overrides)
    evaluate = run_step("evaluate", jobs, parent_job=train.id, checkpoint="best",
                        data={"eval_dataset": data["test"]})
    export = run_step("export", jobs, parent_job=train.id, checkpoint="best")
    infer = run_step("inference", jobs, parent_job=export.id, data={"inference_dataset": data["test"]})

    metrics_path = Path(evaluate.artifacts["metrics"])
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    shown = {k: round(metrics[k], 4) for k in ("auroc", "average_precision", "recall_at_fa_1pct",
                                               "total_accuracy", "defect_accuracy", "false_alarm") if k in metrics}
    print("[demo] evaluation:", json.dumps(shown))
    print(f"[demo] metrics:        {metrics_path}")
    plots = [path for name, path in sorted(evaluate.artifacts.items()) if path.endswith(".png")]
    print(f"[demo] plots:          {', '.join(plots)}")
    print(f"[demo] onnx:           {export.artifacts['onnx_file']}")
    print(f"[demo] inference.csv:  {infer.artifacts['inference_csv']} (ONNX Runtime)")
    print(f"[demo] jobs:           python -m runners list --jobs-root {jobs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
