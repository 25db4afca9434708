"""Wall time of `python -m runners plan train` (a whole process: interpreter start, imports, spec build, checks).

    .venv/bin/python benchmarks/plan_latency.py [--runs 10]

Plans a train job on a small generated split (two lights, 32 px) with AutoML off and prints the minimum, median
and maximum wall time over ``--runs`` runs, and whether torch was imported (it must not be: the planning path is
light). Target: median <= 0.5 s on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from optical_inspection.data.synthetic import make_synthetic_split  # noqa: E402

_PROBE = ("import sys, runpy; sys.argv = ['runners', *sys.argv[1:]]\n"
          "try:\n    runpy.run_module('runners', run_name='__main__')\n"
          "except SystemExit:\n    pass\n"
          "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', "
          "'pytorch_lightning')), file=sys.stderr)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for split, seed in (("train", 0), ("val", 1)):
            make_synthetic_split(root / split, 6, lights=("SolderLight", "WhiteLight"), size=32, seed=seed)
        overrides = {"epochs": 2, "image_size": 32, "dataset.input_map": {"SolderLight": 0, "WhiteLight": 1}}
        plan = ["plan", "train", "--jobs-root", str(root / "jobs"), "--automl-policy", "off",
                "--data", f"train_datasets={root / 'train'}", "--data", f"eval_dataset={root / 'val'}",
                "--overrides", json.dumps(overrides)]
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        walls = []
        for _ in range(args.runs):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "runners", *plan], cwd=root, capture_output=True,
                                  text=True, env=env)
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                sys.exit(f"plan failed (exit {done.returncode}): {done.stderr}")
        probe = subprocess.run([sys.executable, "-c", _PROBE, *plan], cwd=root, capture_output=True, text=True,
                               env=env)
        heavy = next((line for line in probe.stderr.splitlines() if line.startswith("HEAVY")), "HEAVY ?")
    print(f"plan train: min {min(walls):.3f} s, median {statistics.median(walls):.3f} s, max {max(walls):.3f} s "
          f"over {args.runs} runs; heavy modules imported: {heavy[6:]}")


if __name__ == "__main__":
    main()
