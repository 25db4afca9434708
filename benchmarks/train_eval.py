"""Accuracy and speed of the default Compact model vs TAO's Siamese_3 on DeepPCB, held out by board group.

    python benchmarks/train_eval.py [--minutes 10] [--threads 2] [--compact-epochs 6]

1. Converts ``../shared/datasets/deeppcb-trainval`` with dataset_convert (format deeppcb, 128-px crops) into
   three splits by board group: train (00041, 13000, 20085, 77000), validation (50600, threshold calibration)
   and test (44000, 92000: whole boards never seen in training).
2. Trains each model in its own process under the same wall-clock budget (``train.max_time_minutes``),
   then evaluates it on the test groups with the evaluate action.
3. Prints AUROC, recall at 1 % and 0.1 % false alarm, training and inference pairs/s, parameters and peak RSS.
Everything is written under ``benchmarks/out/train_eval`` (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEEPPCB = REPO.parent / "shared" / "datasets" / "deeppcb-trainval"
GROUPS = {"train": ["00041", "13000", "20085", "77000"], "val": ["50600"], "test": ["44000", "92000"]}
WINDOW = 128


def convert(out: Path) -> dict[str, Path]:
    """dataset_convert (deeppcb) once per split; reused when already there."""
    from optical_inspection.cli import run_action
    from optical_inspection.spec import validate_dict

    folders = {}
    for split, groups in GROUPS.items():
        folder = out / "deeppcb" / split
        stamp = folder / "groups.json"
        if not (stamp.is_file() and json.loads(stamp.read_text()) == groups):
            spec = {"results_dir": str(out / "convert_logs" / split),
                    "dataset_convert": {"format": "deeppcb", "data_convert_output_dir": str(folder),
                                        "deeppcb": {"root_dir": str(DEEPPCB), "groups": groups,
                                                    "window_size": WINDOW}}}
            t0 = time.time()
            if run_action("dataset_convert", validate_dict(spec, "dataset_convert")) != 0:
                sys.exit(f"dataset_convert failed for {split}; see {out / 'convert_logs' / split}")
            stamp.write_text(json.dumps(groups))
            print(f"converted {split} groups {groups} in {time.time() - t0:.0f}s", file=sys.stderr)
        folders[split] = folder
    return folders


def model_spec(model_type: str, folders: dict[str, Path], results: Path, minutes: float, compact_epochs: int,
               recipe: str = "tuned") -> dict:
    def split(name: str) -> dict[str, str]:
        out = {"csv_path": str(folders[name] / "dataset.csv"), "images_dir": str(folders[name] / "images")}
        boxes = folders[name] / "boxes.csv"
        if name == "train" and boxes.is_file():  # the defect boxes of dataset_convert: the dense map learns them
            out["boxes_path"] = str(boxes)
        return out

    if recipe == "defaults":  # what a user gets from the spec template: only data, size, epochs and budget set
        return {
            "results_dir": str(results), "model": {"model_type": model_type},
            "dataset": {"train_dataset": split("train"), "validation_dataset": split("val"),
                        "test_dataset": split("test"), "infer_dataset": split("test"), "input_map": None,
                        "image_height": WINDOW, "image_width": WINDOW, "workers": 0},
            "train": {"num_epochs": compact_epochs, "max_time_minutes": minutes, "progress_bar": False},
            "evaluate": {"checkpoint": str(results / "train" / "oi_model_latest.pth"), "batch_size": 64},
        }

    aug = {"augment": True, "with_random_blur": False, "with_random_crop": False,
           "random_color": {"enable": False}, "random_shift": {"enable": True, "max_pixels": 3},
           "random_rotate": {"enable": True, "angle_list": [90.0, 180.0, 270.0]}}
    if model_type == "Compact":  # our recipe
        model = {"model_type": "Compact", "base_channels": 16}
        train = {"num_epochs": compact_epochs, "optim": {"type": "AdamW", "lr": 3e-3, "weight_decay": 1e-4,
                                                         "lr_scheduler": "cosine"}}
    else:  # TAO's recipe: Adam 5e-4, no schedule, margin 2
        model = {"model_type": model_type, "margin": 2.0, "embedding_vectors": 5}
        train = {"num_epochs": 10, "optim": {"type": "Adam", "lr": 5e-4, "weight_decay": 0.0,
                                             "lr_scheduler": "none"}}
    train.update({"max_time_minutes": minutes, "progress_bar": False, "seed": 1234})
    return {
        "results_dir": str(results),
        "model": model,
        "dataset": {"train_dataset": split("train"), "validation_dataset": split("val"),
                    "test_dataset": split("test"), "infer_dataset": split("test"), "input_map": None,
                    "image_height": WINDOW, "image_width": WINDOW, "image_ext": ".jpg", "batch_size": 32,
                    "workers": 0, "fpratio_sampling": 0.5, "augmentation_config": aug},
        "train": train,
        "evaluate": {"checkpoint": str(results / "train" / "oi_model_latest.pth"), "batch_size": 64},
    }


def inference_rate(config, checkpoint: Path, repeats: int = 1) -> float:
    """Pairs/s of the scorer alone over the preprocessed test split (batches of evaluate.batch_size)."""
    import copy

    from optical_inspection.data.datamodule import OIDataModule
    from optical_inspection.deploy import load_scorer

    cfg = copy.deepcopy(config)
    cfg.dataset.batch_size = config.evaluate.batch_size
    data = OIDataModule(cfg)
    data.setup("test")
    batches = [(b["test"], b["golden"]) for b in data.test_dataloader()]
    scorer = load_scorer(checkpoint)
    scorer.score(*batches[0])
    t0 = time.perf_counter()
    pairs = 0
    for _ in range(repeats):
        for test, golden in batches:
            scorer.score(test, golden)
            pairs += len(test)
    return pairs / (time.perf_counter() - t0)


def child(model_type: str, args: argparse.Namespace) -> None:
    """Train and evaluate one model; print one JSON line of figures."""
    import torch

    from optical_inspection.cli import run_action
    from optical_inspection.models.checkpoint import load_checkpoint
    from optical_inspection.models.factory import count_parameters
    from optical_inspection.spec import validate_dict
    from optical_inspection.status import read_status

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    folders = {s: out / "deeppcb" / s for s in GROUPS}
    results = out / model_type
    spec = model_spec(model_type, folders, results, args.minutes, args.compact_epochs, args.recipe)
    t0 = time.time()
    train_config = validate_dict(spec, "train")
    if run_action("train", train_config) != 0:
        sys.exit(f"training {model_type} failed; see {results / 'train' / 'status.json'}")
    train_wall = time.time() - t0
    records = read_status(results / "train" / "status.json")
    epochs = [r for r in records if r.get("message") == "Training loop in progress"]
    train_seconds = sum(_seconds(r["time_per_epoch"]) for r in epochs)
    model, meta = load_checkpoint(results / "train" / "oi_model_latest.pth")
    pairs_trained = meta["step"] * train_config.dataset.batch_size
    if run_action("evaluate", validate_dict(spec, "evaluate")) != 0:
        sys.exit(f"evaluate {model_type} failed; see {results / 'evaluate' / 'status.json'}")
    metrics = json.loads((results / "evaluate" / "metrics.json").read_text())
    config = validate_dict(spec, "evaluate")
    figures = {
        "model": model_type, "parameters": count_parameters(model), "epochs_done": len(epochs),
        "steps": meta["step"], "train_seconds": round(train_seconds, 1), "train_wall_seconds": round(train_wall, 1),
        "train_pairs_per_s": round(pairs_trained / max(train_seconds, 1e-9), 1),
        "infer_pairs_per_s": round(inference_rate(config, results / "train" / "oi_model_latest.pth"), 1),
        "auroc": metrics["auroc"], "ap": metrics["average_precision"],
        "recall_at_fa_1pct": metrics["recall_at_fa_1pct"], "recall_at_fa_0_1pct": metrics["recall_at_fa_0_1pct"],
        "test_acc": metrics["total_accuracy"], "threshold": metrics["threshold"], "test_pairs": metrics["num_pairs"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print("RESULT " + json.dumps(figures), flush=True)


def interleaved_speed(args: argparse.Namespace, models: list[str], rounds: int = 5) -> dict[str, dict[str, float]]:
    """Model-only throughput measured alternately (same batches, same moments), so CPU contention from other
    processes hits every model alike: median pairs/s of a training step (forward, backward, optimiser) and of
    scoring, per model."""
    import copy
    import statistics

    import torch

    from optical_inspection.data.datamodule import OIDataModule
    from optical_inspection.models.checkpoint import load_checkpoint
    from optical_inspection.models.losses import pair_losses
    from optical_inspection.spec import validate_dict

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    folders = {s: out / "deeppcb" / s for s in GROUPS}
    specs = {m: model_spec(m, folders, out / m, args.minutes, args.compact_epochs, args.recipe) for m in models}
    small = copy.deepcopy(specs[models[0]])
    small["dataset"]["train_dataset"] = small["dataset"]["test_dataset"]  # a small split to draw batches from
    data = OIDataModule(validate_dict(small, "train"))
    data.setup("test")
    loader = iter(data.train_dataloader())
    batches = [next(loader) for _ in range(4)]
    trainers, scorers = {}, {}
    for m in models:
        scorers[m], meta = load_checkpoint(out / m / "train" / "oi_model_latest.pth")
        trainee = copy.deepcopy(scorers[m])
        trainers[m] = (trainee, torch.optim.Adam(trainee.parameters(), lr=1e-4), meta["model"])
    rates: dict[str, dict[str, list[float]]] = {m: {"train": [], "infer": []} for m in models}
    for _ in range(rounds):
        for m in models:
            trainee, optimizer, settings = trainers[m]
            trainee.train()
            t0 = time.perf_counter()
            for b in batches:
                score = trainee.score(b["test"], b["golden"])
                loss = pair_losses(settings["model_type"], score, b["label"], settings["margin"]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            rates[m]["train"].append(sum(len(b["label"]) for b in batches) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            with torch.inference_mode():
                for b in batches:
                    scorers[m].score(b["test"], b["golden"])
            rates[m]["infer"].append(sum(len(b["label"]) for b in batches) / (time.perf_counter() - t0))
    return {m: {k: round(statistics.median(v), 1) for k, v in r.items()} for m, r in rates.items()}


def _seconds(text: str) -> float:
    """'H:MM:SS.ffffff' (str(timedelta)) -> seconds."""
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model (wall clock)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--compact-epochs", type=int, default=6, help="epochs of the cosine schedule for Compact")
    parser.add_argument("--models", default="Compact,Siamese_3", help="comma-separated model types")
    parser.add_argument("--recipe", choices=("tuned", "defaults"), default="tuned",
                        help="tuned: each model's recipe (Compact: AdamW 3e-3, shift augmentation, fpratio 0.5; "
                             "Siamese: TAO's); defaults: the spec template's values, only data/size/budget set")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "train_eval"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--speed-only", action="store_true", help="only the alternating speed check of trained models")
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    out = Path(args.out)
    if args.speed_only:
        print(json.dumps(interleaved_speed(args, args.models.split(","))))
        return
    convert(out)
    rows = []
    for model_type in args.models.split(","):
        cmd = [sys.executable, __file__, "--child", model_type, "--minutes", str(args.minutes), "--threads",
               str(args.threads), "--compact-epochs", str(args.compact_epochs), "--recipe", args.recipe,
               "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            sys.exit(f"{model_type} run failed (exit {proc.returncode})")
        rows.append(json.loads(lines[-1][len("RESULT "):]))
        print(json.dumps(rows[-1]), flush=True)
    speeds = interleaved_speed(args, [r["model"] for r in rows])
    for row in rows:
        row["train_pairs_per_s_interleaved"] = speeds[row["model"]]["train"]
        row["infer_pairs_per_s_interleaved"] = speeds[row["model"]]["infer"]
    _report(rows)


def _report(rows: list[dict]) -> None:
    keys = ["parameters", "epochs_done", "steps", "train_seconds", "train_pairs_per_s", "infer_pairs_per_s",
            "train_pairs_per_s_interleaved", "infer_pairs_per_s_interleaved", "auroc", "recall_at_fa_1pct",
            "recall_at_fa_0_1pct", "ap", "test_acc", "peak_rss_mib"]
    print(f"\n{'metric':<30}" + "".join(f"{r['model']:>16}" for r in rows))
    for key in keys:
        print(f"{key:<30}" + "".join(f"{_fmt(r[key]):>16}" for r in rows))
    by = {r["model"]: r for r in rows}
    if "Compact" in by and "Siamese_3" in by:
        c, s = by["Compact"], by["Siamese_3"]
        print(f"\nCompact vs Siamese_3 during the timed runs: "
              f"train x{c['train_pairs_per_s'] / s['train_pairs_per_s']:.1f}, "
              f"infer x{c['infer_pairs_per_s'] / s['infer_pairs_per_s']:.1f}; measured alternately: train "
              f"x{c['train_pairs_per_s_interleaved'] / s['train_pairs_per_s_interleaved']:.1f}, infer "
              f"x{c['infer_pairs_per_s_interleaved'] / s['infer_pairs_per_s_interleaved']:.1f}; "
              f"parameters 1/{s['parameters'] / c['parameters']:.0f}")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


if __name__ == "__main__":
    main()
