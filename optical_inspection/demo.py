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


def make_data(root: Path, size: int) -> dict[str, Path]:
    """Train/validation/test split folders (dataset.csv + images/), each from a different seed (other boards)."""
    splits = {"train": (800, 1), "val": (200, 2), "test": (200, 3)}
    return {name: make_synthetic_split(root / name, n, size=size, defect_rate=0.3, seed=seed)[0].parent
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
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=48, help="pixels per light tile")
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    jobs = out / "oi_jobs"
    data = make_data(out / "data", args.size)
    print(f"[demo] generated synthetic 4-light splits under {out / 'data'}", flush=True)
    # The settings benchmarks/train_eval.py uses for the Compact model: AdamW with a cosine schedule, defects
    # drawn at (n_pass/n_fail)*0.5, and only the test-vs-golden shift augmentation.
    train_overrides = {
        "dataset.input_map": LIGHTS, "dataset.image_height": args.size, "dataset.image_width": args.size,
        "dataset.workers": 0, "dataset.fpratio_sampling": 0.5, "epochs": args.epochs, "batch_size": 16,
        "model_type": "Compact", "train.optim.type": "AdamW", "lr": 3e-3, "train.optim.weight_decay": 1e-4,
        "augment": True, "dataset.augmentation_config.with_random_blur": False,
        "dataset.augmentation_config.with_random_crop": False,
        "dataset.augmentation_config.random_color.enable": False,
        "dataset.augmentation_config.random_rotate.enable": False,
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
