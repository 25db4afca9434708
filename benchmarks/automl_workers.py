"""Trials per minute of one shared AutoML study with 1, 2, 3 ... workers (separate processes and jobs roots, as on
separate machines) on one local PostgreSQL server (started here with initdb + pg_ctl, as the tests do).

    .venv/bin/python benchmarks/automl_workers.py [--workers 1 2 3] [--trials 6]

Tiny trials (1 epoch, 24 generated pairs of 32 px, Compact): the figure is dominated by each trial's process
start-up, so it measures the scale-out machinery, not training speed. Prints, per worker count, the wall time from
starting the workers to the last one ending, trials per minute over that wall time, and over the span from the
first trial's start to the last trial's end (without the workers' own start-up). On 2 shared cores more workers
compete for the same CPUs: report the machine's load with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from optical_inspection.data.synthetic import make_synthetic_split  # noqa: E402
from postgres_server import start_server  # noqa: E402


def run_study(data: Path, root: Path, url: str, workers: int, trials: int) -> dict:
    import optuna

    name = f"bench-{workers}"
    overrides = {"epochs": 1, "image_size": 32, "batch_size": 8, "dataset.workers": 0, "train.progress_bar": False,
                 "automl.max_trials": trials, "automl.workers": 1, "automl.study_name": name,
                 "automl.parameters": ["train.optim.lr"], "automl.storage": "${oc.env:OI_OPTUNA_STORAGE}"}
    env = dict(os.environ, OI_OPTUNA_STORAGE=url, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "runners", "run", "train",
                               "--jobs-root", str(root / f"{name}-{i}"),
                               "--data", f"train_datasets={data / 'train'}", "--data", f"eval_dataset={data / 'val'}",
                               "--overrides", json.dumps(overrides)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(workers)]
    errors = [p.communicate()[1] for p in procs]
    wall = time.monotonic() - start
    failed = [e[-1500:] for p, e in zip(procs, errors) if p.returncode != 0]
    if failed:
        raise SystemExit(f"a worker failed: {failed[0]}")
    done = [t for t in optuna.load_study(study_name=name, storage=url).trials if t.state.name == "COMPLETE"]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    per_worker = {}
    for t in done:
        per_worker[t.user_attrs["owner"]["pid"]] = per_worker.get(t.user_attrs["owner"]["pid"], 0) + 1
    return {"workers": workers, "trials_complete": len(done), "wall_s": round(wall, 1),
            "trials_per_min_wall": round(len(done) / wall * 60, 2), "trial_span_s": round(span, 1),
            "trials_per_min_span": round(len(done) / span * 60, 2), "trials_per_worker": sorted(per_worker.values()),
            "load_avg_1m_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--trials", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_synthetic_split(root / "data" / "train", 24, lights=(), size=32, seed=1)
        make_synthetic_split(root / "data" / "val", 12, lights=(), size=32, seed=2)
        server = start_server()
        url = next(server).url
        try:
            print(json.dumps({"cpus": os.cpu_count(), "load_avg_1m_before": round(os.getloadavg()[0], 2)}))
            for n in args.workers:
                print(json.dumps(run_study(root / "data", root, url, n, args.trials)), flush=True)
        finally:
            server.close()


if __name__ == "__main__":
    main()
