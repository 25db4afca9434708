"""`--spec FILE`: a TAO experiment.yaml (paths filled) as the base of train → evaluate → export → inference jobs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import tao_spec
from runner_support import REPO
from splits import runner_split

pytestmark = pytest.mark.slow
SMALL = {"epochs": 1, "image_size": 32, "workers": 0, "batch_size": 4, "dataset.num_input": 2,
         "dataset.grid_map": {"x": 2, "y": 1}, "dataset.input_map": {"SolderLight": 0, "WhiteLight": 1},
         "train.tensorboard.enabled": False}


def _runner(*args: str, cwd: Path) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "runners", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=900)
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="module")
def tao_file(tmp_path_factory) -> Path:
    """TAO's experiment.yaml as a user fills it in: data paths, no NGC pretrained file, its own results folder."""
    root = tmp_path_factory.mktemp("tao_spec")
    train, val = runner_split(root / "train", 8, seed=0), runner_split(root / "val", 6, seed=1)
    spec = tao_spec()
    for name, folder in (("train_dataset", train), ("validation_dataset", val), ("test_dataset", val),
                         ("infer_dataset", val)):
        spec["dataset"][name] = {"csv_path": str(folder / "dataset.csv"), "images_dir": str(folder / "images")}
    spec["train"]["pretrained_model_path"] = None
    spec["results_dir"] = str(root / "tao_results")
    spec["train"]["results_dir"] = str(root / "tao_results" / "train")
    path = root / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_tao_spec_file_runs_a_whole_chain_with_the_replacements_listed(tao_file, tmp_path):
    jobs = str(tmp_path / "jobs")
    code, trained = _runner("run", "train", "--spec", str(tao_file), "--jobs-root", jobs, "--automl-policy", "off",
                            "--overrides", json.dumps(SMALL), cwd=tmp_path)
    assert code == 0 and trained["status"] == "success", trained.get("message")
    warnings = trained["decisions"]["warnings"]
    assert any(w.startswith("train.results_dir:") and "this job's results folder" in w for w in warnings)
    assert any(w.startswith("results_dir:") for w in warnings)
    assert any("not read by train" in w and "evaluate" in w for w in warnings)
    assert not (tao_file.parent / "tao_results").exists()                  # the spec's own folder is untouched
    spec = yaml.safe_load(Path(trained["spec_path"]).read_text())
    assert spec["model"]["model_type"] == "Siamese_3" and spec["train"]["validation_interval"] == 5  # ${...}
    assert trained["decisions"]["base_spec"].startswith(f"spec file {tao_file}")

    # TAO's export input size (512x128: 4 lights of 128 px stacked) fits its geometry, not the small one used here
    fit = ["--overrides", json.dumps({"export.input_height": None, "export.input_width": None})]
    chain = [("evaluate", trained["id"], []), ("export", trained["id"], fit), ("inference", None, [])]
    exported: dict = {}
    for action, parent, extra in chain:
        parent = parent or exported["id"]
        code, job = _runner("run", action, "--spec", str(tao_file), "--jobs-root", jobs, "--parent-job", parent,
                            *extra, cwd=tmp_path)
        assert code == 0 and job["status"] == "success", (action, job.get("message"), job.get("problems"))
        replaced = " ".join(job["decisions"]["warnings"])
        assert f"parent job {parent}" in replaced or action == "export" and "oi_model.onnx" in replaced, replaced
        if action == "export":
            exported = job
    assert not (tao_file.parent / "tao_results").exists()


def test_an_unusable_spec_file_is_refused_before_anything_is_written(tao_file, tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("train: {num_epochs: 3\n")
    (tmp_path / "dangling.yaml").write_text("train:\n  num_epochs: ${train.nope}\n")
    for name, expected in (("list.yaml", "must be a mapping"), ("broken.yaml", "YAML syntax error at line"),
                           ("missing.yaml", "does not exist"), ("dangling.yaml", "cannot resolve")):
        code, answer = _runner("plan", "train", "--spec", str(tmp_path / name), "--jobs-root", str(tmp_path / "jobs"),
                               cwd=tmp_path)
        assert code == 2 and expected in answer["error"] and name in answer["error"], answer
        code, answer = _runner("run", "train", "--spec", str(tmp_path / name), "--jobs-root", str(tmp_path / "jobs"),
                               cwd=tmp_path)
        assert code == 2 and not (tmp_path / "jobs").exists()
