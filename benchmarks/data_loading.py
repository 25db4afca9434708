"""Data-loading speed on a DeepPCB-derived split: pairs/s of a cold epoch (reads the CSV, checks files, decodes
every JPEG once) and of warm epochs (memory only), with and without augmentation, versus streaming from disk with
worker processes; peak RSS. Proves warm epochs decode nothing: every image open is counted.

    .venv/bin/python benchmarks/data_loading.py [--groups 00041] [--batch-size 32] [--warm-epochs 2]

Without DeepPCB (``--deeppcb`` missing) a synthetic 4-light split is used instead, and said so.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optical_inspection.data.images as images_module
from optical_inspection.data.convert_deeppcb import convert_deeppcb
from optical_inspection.data.datamodule import OIDataModule
from optical_inspection.data.synthetic import make_synthetic_split
from optical_inspection.spec import validate_dict

OUT = Path(__file__).resolve().parent / "out"


class OpenCounter:
    """Counts image-file opens (= JPEG decodes) made by the data package in this process."""

    def __init__(self) -> None:
        self.count = 0
        real = images_module.Image.open

        def counting(*args, **kwargs):
            self.count += 1
            return real(*args, **kwargs)
        images_module.Image.open = counting


def make_split(args: argparse.Namespace) -> tuple[Path, Path, str, dict | None]:
    """(csv, images_dir, description, input_map) of the benchmark split, converting DeepPCB once."""
    if not Path(args.deeppcb, "PCBData").is_dir():
        csv_path, images = make_synthetic_split(OUT / "synthetic", 2000, size=args.window, seed=0)
        return csv_path, images, "synthetic 4-light split (DeepPCB not found)", {
            "LowAngleLight": 0, "SolderLight": 1, "UniformLight": 2, "WhiteLight": 3}
    groups = [] if args.groups == "all" else args.groups.split(",")
    target = OUT / f"deeppcb_{args.groups.replace(',', '-')}_w{args.window}"
    stamp = target / "converted.json"
    settings = {"groups": groups, "window": args.window, "seed": 0}
    if not stamp.is_file() or json.loads(stamp.read_text()) != settings:
        t = time.perf_counter()
        info = convert_deeppcb(args.deeppcb, target, groups=groups, window_size=args.window, jitter=16,
                               pass_per_fail=3.0, seed=0)
        print(f"converted DeepPCB groups {args.groups}: {info['pairs']} pairs from {info['source_images']} images "
              f"in {time.perf_counter() - t:.1f} s")
        stamp.write_text(json.dumps(settings))
    return target / "dataset.csv", target, f"DeepPCB groups {args.groups}, {args.window}px crops", None


def config(csv_path: Path, images: Path, input_map: dict | None, args: argparse.Namespace, **dataset):
    split = {"csv_path": str(csv_path), "images_dir": str(images)}
    spec = {"train_dataset": split, "validation_dataset": split, "input_map": input_map,
            "image_height": args.window, "image_width": args.window, "batch_size": args.batch_size,
            "workers": args.workers, "fpratio_sampling": 0.1, **dataset}
    return validate_dict({"dataset": spec}, None)


def epoch(loader) -> tuple[int, float]:
    t = time.perf_counter()
    n = sum(len(batch["index"]) for batch in loader)
    return n, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    deeppcb = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "deeppcb-trainval"  # beside the checkout
    parser.add_argument("--deeppcb", default=str(deeppcb))
    parser.add_argument("--groups", default="00041", help="comma-separated DeepPCB groups, or 'all'")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warm-epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="worker processes when streaming")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    csv_path, images, what, input_map = make_split(args)
    opens = OpenCounter()
    results: dict = {"split": what, "batch_size": args.batch_size}

    # Streaming first, so the worker processes fork from a lean parent (their RSS is then their own).
    stream = OIDataModule(config(csv_path, images, input_map, args, cache_memory_mb=0))
    stream.setup("validate")
    n, s = epoch(stream.val_dataloader())
    results[f"streaming_{args.workers}_workers_pairs_per_s"] = n / s
    results["peak_rss_mib_stream_worker"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    del stream

    t, start = time.perf_counter(), opens.count
    dm = OIDataModule(config(csv_path, images, input_map, args))
    dm.setup("fit")  # reads the CSV, checks every file, decodes every image once
    setup_s = time.perf_counter() - t
    before = opens.count
    n, s = epoch(dm.val_dataloader())
    results["rows"] = len(dm.table("train"))
    results["cold_epoch_s"] = setup_s + s
    results["cold_epoch_pairs_per_s"] = n / (setup_s + s)
    results["images_decoded_cold"] = before - start
    results["cache_mib"] = dm.dataset("train").decoded.nbytes / 2**20
    warm = [epoch(dm.val_dataloader()) for _ in range(args.warm_epochs)]
    results["warm_epoch_pairs_per_s"] = sum(n for n, _ in warm) / sum(s for _, s in warm)
    dm.dataset_cfg.augmentation_config.augment = True  # same decoded split, now augmented and fpratio-sampled
    warm_aug = [epoch(dm.train_dataloader()) for _ in range(args.warm_epochs)]
    results["warm_train_augmented_pairs_per_s"] = sum(n for n, _ in warm_aug) / sum(s for _, s in warm_aug)
    results["images_decoded_in_warm_epochs"] = opens.count - before
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["load_average_1min"] = os.getloadavg()[0]

    print(f"\nData loading, {what}: {results['rows']} pairs, batch {args.batch_size}, "
          f"torch threads {args.threads}, {os.cpu_count()} CPUs")
    for key, value in results.items():
        if isinstance(value, float):
            print(f"  {key:40s} {value:10.1f}")
        elif key != "split":
            print(f"  {key:40s} {value:>10}")
    (OUT / "data_loading.json").write_text(json.dumps(results, indent=2))
    if results["images_decoded_in_warm_epochs"]:
        sys.exit("warm epochs decoded images again")


if __name__ == "__main__":
    main()
