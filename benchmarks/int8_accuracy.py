"""INT8 (QDQ) accuracy of the default Compact model on DeepPCB boards held out by group, scored with ONNX Runtime.

    .venv/bin/python benchmarks/int8_accuracy.py [--minutes 4] [--epochs 2] [--checkpoint oi_model_latest.pth]

1. Converts DeepPCB into train / validation / test splits by board group, exactly as ``train_eval.py`` does.
2. Trains Compact with ``train_eval.py``'s recipe under a short wall-clock budget (or takes ``--checkpoint``).
3. Exports ONNX (dynamic batch), then makes the INT8 QDQ copy that TensorRT 11 builds from
   (:func:`optical_inspection.deploy.qdq.quantize_to_qdq`), calibrated on pairs of the *validation* group.
4. Scores every pair of the held-out test groups with the fp32 and the INT8 ONNX under ONNX Runtime (CPU) and
   prints their correlation, each AUROC and the difference.
Everything is written under ``benchmarks/out/int8_accuracy`` (git-ignored); the converted splits are reused.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_eval import GROUPS, convert, model_spec

from optical_inspection.cli import run_action
from optical_inspection.data.preprocess import Preprocessor
from optical_inspection.data.table import read_split
from optical_inspection.deploy.calibration import CalibrationPairs
from optical_inspection.deploy.onnx_backend import OnnxScorer
from optical_inspection.deploy.qdq import quantize_to_qdq
from optical_inspection.models.metrics import auroc
from optical_inspection.spec import validate_dict

OUT = Path(__file__).resolve().parent / "out" / "int8_accuracy"
CHUNK = 256  # pairs preprocessed and scored at a time (128-px strips: ~50 MB per side)


def train(spec: dict, results: Path) -> Path:
    """Train with the spec (skipped when this run's checkpoint is already there)."""
    checkpoint = results / "train" / "oi_model_latest.pth"
    if not checkpoint.is_file():
        t0 = time.time()
        if run_action("train", validate_dict(spec, "train")) != 0:
            sys.exit(f"training failed; see {results / 'train' / 'status.json'}")
        print(f"trained Compact in {time.time() - t0:.0f}s", file=sys.stderr)
    return checkpoint


def export(spec: dict, checkpoint: Path, onnx_path: Path) -> None:
    spec = {**spec, "export": {"checkpoint": str(checkpoint), "onnx_file": str(onnx_path), "batch_size": -1,
                               "overwrite": True}}
    if run_action("export", validate_dict(spec, "export")) != 0:
        sys.exit(f"export failed; see {onnx_path.parent / 'export' / 'status.json'}")


def score_split(paths: dict[str, Path], config, split_dir: Path, threads: int) -> tuple[dict, np.ndarray]:
    """{name: scores} of every pair of the split for each ONNX file, and the labels."""
    table = read_split(split_dir / "dataset.csv", split_dir / "images", config.dataset)
    prep = Preprocessor(config.dataset)
    scorers = {name: OnnxScorer(path, "cpu", threads=threads) for name, path in paths.items()}
    scores: dict[str, list[np.ndarray]] = {name: [] for name in paths}
    for start in range(0, len(table), CHUNK):
        test, golden = prep.load_pairs(table, range(start, min(start + CHUNK, len(table))))
        for name, scorer in scorers.items():
            scores[name].append(scorer.score(test, golden))
    return {name: np.concatenate(s) for name, s in scores.items()}, table.labels.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a trained Compact checkpoint of 128-px DeepPCB crops (skips training)")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget (wall clock)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the cosine schedule")
    parser.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime threads")
    parser.add_argument("--cal-batch-size", type=int, default=32, help="calibration pairs per batch")
    parser.add_argument("--cal-batches", type=int, default=8, help="calibration batches (from the validation group)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    folders = convert(out)
    results = out / "Compact"
    spec = model_spec("Compact", folders, results, args.minutes, args.epochs)
    checkpoint = Path(args.checkpoint) if args.checkpoint else train(spec, results)
    fp32, int8 = out / "compact_fp32.onnx", out / "compact_int8_qdq.onnx"
    export(spec, checkpoint, fp32)
    config = validate_dict(spec, "evaluate")
    pairs = CalibrationPairs([str(folders["val"])], config.dataset, args.cal_batch_size, args.cal_batches)
    t0 = time.time()
    quantize_to_qdq(fp32, int8, pairs, None)
    quantize_s = time.time() - t0
    scores, labels = score_split({"fp32": fp32, "int8": int8}, config, folders["test"], args.threads)
    figures = {
        "checkpoint": str(checkpoint), "test_groups": GROUPS["test"], "test_pairs": int(len(labels)),
        "defects": int(labels.sum()), "calibration_pairs": args.cal_batch_size * args.cal_batches,
        "quantize_seconds": round(quantize_s, 1),
        "corrcoef": float(np.corrcoef(scores["fp32"], scores["int8"])[0, 1]),
        "auroc_fp32": auroc(scores["fp32"], labels), "auroc_int8": auroc(scores["int8"], labels),
    }
    figures["auroc_difference"] = figures["auroc_int8"] - figures["auroc_fp32"]
    (out / "int8_accuracy.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
