"""Inference speed: pairs/s and p50/p99 batch latency for torch eager, ONNX Runtime and (where present) TensorRT.

Each model is built with seeded random weights at the given geometry, saved as a checkpoint and exported with the
real export action, so the ONNX file timed here is what users deploy. Inputs are random preprocessed strips
(speed does not depend on the pixel values).

    .venv/bin/python benchmarks/inference.py                       # Compact + Siamese_3, 4 lights x 128x128
    .venv/bin/python benchmarks/inference.py --models Compact --batches 1 32 --seconds 5 --json out.json
    .venv/bin/python benchmarks/inference.py --trt                 # adds TensorRT fp32/fp16 + torch CUDA (GPU)
    .venv/bin/python benchmarks/inference.py --end-to-end --pairs 12560 --repeats 3

``--end-to-end`` times the inference CLI itself (process start to ``inference.csv``, JPEG decoding included) from
the checkpoint and from the ONNX file of a seeded Compact model, on the first ``--pairs`` rows of a DeepPCB
conversion (``dataset_convert``, 128-px crops, made once under ``benchmarks/out``), and reports the best of
``--repeats`` runs and the child's peak RSS.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optical_inspection.actions import export
from optical_inspection.config import ExperimentConfig
from optical_inspection.deploy.onnx_backend import OnnxScorer
from optical_inspection.models.checkpoint import save_checkpoint
from optical_inspection.models.factory import build_model, dataset_geometry, model_settings
from optical_inspection.status import StatusLogger

LIGHTS = ("LowAngleLight", "SolderLight", "UniformLight", "WhiteLight")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["Compact", "Siamese_3"], help="model types to time")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32], help="batch sizes")
    parser.add_argument("--lights", type=int, default=4, help="lights per side (TAO's default spec: 4)")
    parser.add_argument("--size", type=int, default=128, help="tile height and width (TAO's default: 128)")
    parser.add_argument("--seconds", type=float, default=4.0, help="timing budget per (model, backend, batch)")
    parser.add_argument("--min-runs", type=int, default=5, help="timed runs at least, whatever the budget")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for torch and ORT")
    parser.add_argument("--trt", action="store_true", help="also time TensorRT (needs tensorrt and a GPU)")
    parser.add_argument("--trt-precisions", nargs="+", default=["fp32", "fp16"], help="TensorRT engine precisions")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--end-to-end", action="store_true", help="time the inference CLI on DeepPCB crops instead")
    parser.add_argument("--pairs", type=int, default=12560, help="--end-to-end: rows of the infer split")
    parser.add_argument("--repeats", type=int, default=3, help="--end-to-end: runs per model file (best reported)")
    parser.add_argument("--formats", nargs="+", default=["onnx", "pth"], help="--end-to-end: model files to time")
    return parser.parse_args(argv)


def end_to_end(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Wall time of `optical_inspection inference` (a fresh process each run) on DeepPCB crops, per model file."""
    import resource
    import subprocess

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_eval import convert

    out = Path(__file__).resolve().parent / "out" / "inference_e2e"
    source = convert(Path(__file__).resolve().parent / "out" / "train_eval")["train"]
    lines = (source / "dataset.csv").read_text().splitlines()
    if len(lines) - 1 < args.pairs:
        sys.exit(f"the converted split has {len(lines) - 1} rows, fewer than --pairs {args.pairs}")
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "infer.csv"
    csv_path.write_text("\n".join(lines[: args.pairs + 1]) + "\n")
    cfg = spec_for("Compact", 1, 128)
    for stale in out.glob("Compact.*"):
        stale.unlink()
    _, checkpoint, onnx_path, _ = make_files(cfg, out)
    dataset = {"infer_dataset": {"csv_path": str(csv_path), "images_dir": str(source / "images")},
               "input_map": None, "image_height": 128, "image_width": 128}
    results = []
    for fmt in args.formats:
        key = "onnx_file" if fmt == "onnx" else "checkpoint"
        spec = out / f"spec_{fmt}.yaml"
        spec.write_text(yaml.safe_dump({"results_dir": str(out / fmt), "dataset": dataset,
                                        "inference": {key: str(onnx_path if fmt == "onnx" else checkpoint)}}))
        walls, cpus = [], []
        for _ in range(args.repeats):
            (out / fmt / "inference" / "inference.csv").unlink(missing_ok=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "optical_inspection", "inference", "-e", str(spec)],
                                  capture_output=True, text=True)
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if proc.returncode != 0 or not (out / fmt / "inference" / "inference.csv").is_file():
                sys.exit(f"inference from {fmt} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        row = {"model_file": fmt, "pairs": args.pairs, "best_wall_s": round(min(walls), 2),
               "walls_s": [round(w, 2) for w in walls], "pairs_per_s": round(args.pairs / min(walls), 1),
               "cpu_s": [round(c, 2) for c in cpus], "pairs_per_cpu_s": round(args.pairs / min(cpus), 1),
               "peak_rss_mib_children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
               "load_average_1min": os.getloadavg()[0]}
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


def spec_for(model_type: str, lights: int, size: int) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.model.model_type = model_type
    cfg.dataset.input_map = {name: i for i, name in enumerate(LIGHTS[:lights])} if lights > 1 else None
    cfg.dataset.image_height = size
    cfg.dataset.image_width = size
    return cfg


def make_files(cfg: ExperimentConfig, folder: Path) -> tuple[torch.nn.Module, Path, Path, float]:
    """(eval model, checkpoint, exported dynamic-batch ONNX, export seconds)."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    checkpoint = save_checkpoint(folder / f"{cfg.model.model_type}.pth", model, {
        "model": model_settings(cfg.model), "dataset": dataset_geometry(cfg.dataset), "epoch": 0, "step": 0,
        "threshold": None})
    spec = copy.deepcopy(cfg)
    spec.export.checkpoint = str(checkpoint)
    spec.export.onnx_file = str(folder / f"{cfg.model.model_type}.onnx")
    start = time.perf_counter()
    export.run(spec, folder, StatusLogger(folder / "status.json"))
    return model, checkpoint, Path(spec.export.onnx_file), time.perf_counter() - start


def time_interleaved(calls: dict[str, tuple[Callable[[], Any], Callable[[], None]]], batch: int, seconds: float,
                     min_runs: int) -> dict[str, dict[str, Any]]:
    """Time every backend in turns (one call each per round) so that load from other processes on a shared
    machine hits them alike; stops after ``seconds`` per backend and at least ``min_runs`` rounds."""
    for call, sync in calls.values():
        for _ in range(2):  # warm-up: allocations, kernel selection, lazy initialisation
            call()
        sync()
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.perf_counter() + seconds * len(calls)
    rounds = 0
    while rounds < min_runs or time.perf_counter() < deadline:
        for name, (call, sync) in calls.items():
            start = time.perf_counter()
            call()
            sync()
            latencies[name].append(time.perf_counter() - start)
        rounds += 1
    out = {}
    for name, values in latencies.items():
        lat = np.asarray(values) * 1e3
        out[name] = {"batch": batch, "runs": len(lat), "pairs_per_s": batch * len(lat) / (lat.sum() / 1e3),
                     "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}
    return out


def backends(model: torch.nn.Module, onnx_path: Path, args: argparse.Namespace, folder: Path
             ) -> dict[str, tuple[Callable[[Any, Any], Any], Callable[[], None], str]]:
    """name -> (score function, sync, input device)."""
    out: dict[str, tuple[Callable[[Any, Any], Any], Callable[[], None], str]] = {}

    def torch_score(module: torch.nn.Module) -> Callable[[Any, Any], Any]:
        def score(a: Any, b: Any) -> Any:
            with torch.inference_mode():
                return module.score(a, b)
        return score

    out["torch eager cpu"] = (torch_score(model), lambda: None, "cpu")
    ort = OnnxScorer(onnx_path, provider="cpu", threads=args.threads)
    out["onnxruntime cpu"] = (ort.score, lambda: None, "numpy")
    if args.trt:
        if not torch.cuda.is_available():
            print("--trt: no CUDA GPU visible to torch; TensorRT and torch CUDA skipped", file=sys.stderr)
            return out
        gpu_model = copy.deepcopy(model).cuda()
        out["torch eager cuda"] = (torch_score(gpu_model), torch.cuda.synchronize, "cuda")
        try:
            from optical_inspection.deploy.trt_backend import TrtScorer
            from optical_inspection.deploy.trt_build import BuildSettings, build_engine
        except ImportError as exc:
            print(f"--trt: {exc}", file=sys.stderr)
            return out
        for precision in args.trt_precisions:
            engine = folder / f"{onnx_path.stem}_{precision}.engine"
            settings = BuildSettings(data_type=precision, min_batch=1, opt_batch=max(args.batches),
                                     max_batch=max(args.batches), workspace_mb=4096)
            try:
                build_engine(onnx_path, engine, settings, None)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other backends
                print(f"--trt: {precision} engine not built: {exc}", file=sys.stderr)
                continue
            out[f"tensorrt {precision}"] = (TrtScorer(engine).score, torch.cuda.synchronize, "cuda")
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory(prefix="oi_bench_") as tmp:
        for model_type in args.models:
            cfg = spec_for(model_type, args.lights, args.size)
            model, _, onnx_path, export_s = make_files(cfg, Path(tmp))
            shape = tuple(model.strip_shape)
            params = sum(p.numel() for p in model.parameters())
            print(f"\n{model_type}: strips {shape}, {params:,} parameters, ONNX {onnx_path.stat().st_size / 2**20:.1f} "
                  f"MiB exported in {export_s:.1f} s", flush=True)
            runners = backends(model, onnx_path, args, Path(tmp))
            for batch in args.batches:
                gen = torch.Generator().manual_seed(batch)
                a, b = (torch.randn(batch, *shape, generator=gen) for _ in range(2))
                inputs = {"cpu": (a, b), "numpy": (a.numpy(), b.numpy())}
                if any(device == "cuda" for _, _, device in runners.values()):
                    inputs["cuda"] = (a.cuda(), b.cuda())
                calls = {name: (lambda s=score, x=inputs[device]: s(*x), sync)
                         for name, (score, sync, device) in runners.items()}
                for name, row in time_interleaved(calls, batch, args.seconds, args.min_runs).items():
                    results.append({"model": model_type, "backend": name, **row})
                    print(f"  {name:<18} batch {batch:>3}: {row['pairs_per_s']:9.1f} pairs/s  p50 {row['p50_ms']:8.2f} "
                          f"ms  p99 {row['p99_ms']:8.2f} ms  ({row['runs']} runs)", flush=True)
            del model
    return results


def speedups(results: list[dict[str, Any]]) -> list[str]:
    """ONNX Runtime (and TensorRT) throughput relative to torch eager on the same device class."""
    lines = []
    by_key = {(r["model"], r["backend"], r["batch"]): r for r in results}
    for (model, backend, batch), row in by_key.items():
        base = by_key.get((model, "torch eager cpu" if "cpu" in backend else "torch eager cuda", batch))
        if base is not None and not backend.startswith("torch"):
            lines.append(f"{model} batch {batch}: {backend} {row['pairs_per_s'] / base['pairs_per_s']:.2f}x "
                         f"{'torch eager cpu' if 'cpu' in backend else 'torch eager cuda'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.end_to_end:
        results = end_to_end(args)
        if args.json:
            args.json.write_text(json.dumps({"end_to_end": results}, indent=2) + "\n")
        return 0
    print(f"inference benchmark: {platform.processor() or platform.machine()}, {args.threads} thread(s), torch "
          f"{torch.__version__}, geometry {args.lights} light(s) x {args.size}x{args.size}")
    results = run(args)
    print("\nspeed-ups (pairs/s ratio):")
    for line in speedups(results):
        print("  " + line)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
