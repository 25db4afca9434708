"""The built wheel carries the skill bank: installed outside the checkout, plan and a train → evaluate chain run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from helpers import REPO
from runner_support import TRAIN_OVERRIDES
from splits import runner_split

pytestmark = pytest.mark.slow
SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "out", "oi_jobs", "results")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh environment holding only the wheel; the other dependencies are seen through a path entry."""
    root = tmp_path_factory.mktemp("wheel")
    source = shutil.copytree(REPO, root / "source", ignore=SKIP)   # building writes build/ beside the sources
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(root / "dist"), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    wheel = next((root / "dist").glob("optical_inspection-*.whl"))
    env = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # torch & co. from this environment, as a plain path: its editable finder for the checkout is not loaded
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return python


def _runner(python: Path, cwd: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(python), "-m", "runners", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_the_wheel_plans_and_runs_a_train_evaluate_chain_outside_the_checkout(installed, tmp_path):
    where = subprocess.run([str(installed), "-c", "import optical_inspection, runners; "
                            "print(optical_inspection.__file__); print(runners.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.split()
    assert all(str(installed.parent.parent) in p for p in where), where   # the wheel's copy, not the checkout's
    train, val = runner_split(tmp_path / "train", 8, seed=0), runner_split(tmp_path / "val", 6, seed=1)
    jobs = str(tmp_path / "jobs")
    data = ["--data", f"train_datasets={train}", "--data", f"eval_dataset={val}"]
    overrides = json.dumps({**TRAIN_OVERRIDES, "epochs": 1})
    plan = _runner(installed, tmp_path, "plan", "train", "--jobs-root", jobs, "--automl-policy", "off", *data,
                   "--overrides", overrides)
    assert plan["spec"]["train"]["num_epochs"] == 1
    trained = _runner(installed, tmp_path, "run", "train", "--jobs-root", jobs, "--automl-policy", "off", *data,
                      "--overrides", overrides)
    assert trained["status"] == "success", trained["message"]
    evaluated = _runner(installed, tmp_path, "run", "evaluate", "--jobs-root", jobs, "--parent-job", trained["id"],
                        "--data", f"eval_dataset={val}")
    assert evaluated["status"] == "success" and "test_acc" in evaluated["metrics"]
    skills = tmp_path / "agent_skills"
    done = subprocess.run([str(installed), "-m", "optical_inspection", "skills", "install", "--agent", str(skills)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (skills / "optical-inspection" / "schemas" / "train.schema.json").is_file()
