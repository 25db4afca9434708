"""`plan`: spec building order, shorthand/dotted overrides, every problem at once, no writes, no torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner_support import REPO, TRAIN_OVERRIDES
from runners.api import plan_job
from runners.errors import DataSourceError, RequestError
from splits import runner_split


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plan_data")
    return {"train": runner_split(root / "train", 6, seed=0), "val": runner_split(root / "val", 4, seed=1)}


def _data(splits):
    return {"train_datasets": str(splits["train"]), "eval_dataset": str(splits["val"])}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runners", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_plan_builds_the_spec_in_order_and_records_sources(splits, tmp_path):
    plan = plan_job("train", jobs_root=tmp_path / "jobs", automl_policy="off", data=_data(splits),
                    overrides={"epochs": 3, "train.num_epochs": 4, "image_size": 48, "lr": 0.002})
    spec, values = plan.draft.data, plan.decisions()["spec_values"]
    assert spec["train"]["num_epochs"] == 4, "a dotted key wins over the shorthand for the same key"
    assert values["train.num_epochs"]["source"] == "override"
    assert spec["dataset"]["image_height"] == spec["dataset"]["image_width"] == 48
    assert values["dataset.image_width"]["source"] == "override (shorthand 'image_size')"
    assert spec["train"]["optim"]["lr"] == 0.002
    assert spec["dataset"]["train_dataset"]["csv_path"] == str(splits["train"] / "dataset.csv")
    assert spec["dataset"]["train_dataset"]["images_dir"] == str(splits["train"] / "images")
    assert spec["dataset"]["validation_dataset"]["csv_path"] == str(splits["val"] / "dataset.csv")
    assert values["dataset.validation_dataset.images_dir"]["source"].startswith("data source eval_dataset")
    assert values["results_dir"]["source"] == "runner: this job's results folder"
    template = yaml.safe_load((REPO / "references" / "spec_template_train.yaml").read_text())
    assert spec["model"] == template["model"], "keys nobody touched keep the template values"
    assert plan.decisions()["automl_policy"] == {"value": "off", "reason": "explicit automl_policy=off"}
    assert not (tmp_path / "jobs").exists(), "plan writes nothing"


def test_every_problem_is_reported_at_once_with_its_key(splits, tmp_path):
    with pytest.raises(RequestError) as err:
        plan_job("train", jobs_root=tmp_path, data={"train_datasets": str(splits["train"])},
                 overrides={"train.num_epocs": 3, "batch_size": "big", "train.optim.lr": -1,
                            "model.model_type": "ResNet"})
    problems = err.value.problems
    text = "\n".join(problems)
    assert "train.num_epocs: unknown key for train; did you mean 'train.num_epochs'?" in text
    assert any(p.startswith("dataset.batch_size:") for p in problems)
    assert any(p.startswith("train.optim.lr:") for p in problems)
    assert any(p.startswith("model.model_type:") for p in problems)
    assert ("dataset.validation_dataset.csv_path: a value is required for train; give --data eval_dataset=LOCATION"
            in problems)
    assert len(problems) >= 6


def test_shorthand_for_a_key_the_action_does_not_read(tmp_path):
    with pytest.raises(RequestError, match="epochs: shorthand for train.num_epochs, which export does not read"):
        plan_job("export", jobs_root=tmp_path, overrides={"epochs": 3, "export.checkpoint": "/x/model.pth"})


def test_bad_data_arguments(splits, tmp_path):
    with pytest.raises(RequestError, match="evaluate reads no data source 'train_datasets'"):
        plan_job("evaluate", jobs_root=tmp_path, data={"train_datasets": str(splits["train"])})
    with pytest.raises(DataSourceError, match="does not exist"):
        plan_job("train", jobs_root=tmp_path, data={"train_datasets": str(tmp_path / "nope")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match=r"no dataset.csv here \(found: an empty folder\)"):
        plan_job("train", jobs_root=tmp_path, data={"train_datasets": str(tmp_path / "empty")})
    with pytest.raises(RequestError, match="takes one location"):
        plan_job("train", jobs_root=tmp_path, data={"train_datasets": [str(splits["train"])] * 2})


def test_an_override_of_a_runner_resolved_key_is_a_conflict(splits, tmp_path):
    with pytest.raises(RequestError, match="dataset.train_dataset.csv_path: set by --overrides .* drop the override"):
        plan_job("train", jobs_root=tmp_path, data=_data(splits),
                 overrides={"dataset.train_dataset.csv_path": "/tmp/elsewhere.csv"})


def test_checkpoint_needs_a_parent_and_a_valid_form(tmp_path):
    with pytest.raises(RequestError, match="needs --parent-job"):
        plan_job("evaluate", jobs_root=tmp_path, checkpoint="best")
    with pytest.raises(RequestError, match="best, latest or epoch=N"):
        plan_job("evaluate", jobs_root=tmp_path, checkpoint="epoch=0", parent_job="x")


def test_cli_plan_prints_json_and_documented_exit_codes(splits, tmp_path):
    done = _cli("plan", "train", "--jobs-root", str(tmp_path / "jobs"), "--request", "no HPO",
                "--data", f"train_datasets={splits['train']}", "--data", f"eval_dataset={splits['val']}",
                "--overrides", json.dumps(TRAIN_OVERRIDES), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["automl_policy"] == {"value": "off", "reason": "the request says 'no HPO'", "phrase": "no HPO"}
    assert out["spec"]["train"]["num_epochs"] == 2
    bad = _cli("plan", "train", "--overrides", "{epochs: 3}", cwd=tmp_path)
    assert bad.returncode == 2 and "not valid JSON" in json.loads(bad.stdout)["error"]
    assert bad.stderr.startswith("ERROR:")
    missing = _cli("plan", "train", "--data", f"train_datasets={tmp_path / 'nope'}", cwd=tmp_path)
    assert missing.returncode == 4
    unknown = "oi-train-20250101-093000-000000"
    unknown_job = _cli("plan", "evaluate", "--parent-job", unknown, "--jobs-root", str(tmp_path), cwd=tmp_path)
    assert unknown_job.returncode == 3 and f"no job '{unknown}'" in unknown_job.stdout
    assert _cli("plan", "fly", cwd=tmp_path).returncode == 2


_PROBE = """
import io, contextlib, json, sys
from runners.cli import main
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning', 'lightning', 'torchvision'))
print(json.dumps({"code": code, "heavy": heavy, "out": json.loads(buf.getvalue())}))
"""


def test_plan_never_imports_torch(splits, tmp_path):
    """The planning path stays light (its wall time is measured by benchmarks/plan_latency.py, not here)."""
    args = ["plan", "train", "--jobs-root", str(tmp_path / "jobs"), "--automl-policy", "off",
            "--data", f"train_datasets={splits['train']}", "--data", f"eval_dataset={splits['val']}",
            "--overrides", json.dumps(TRAIN_OVERRIDES)]
    probe = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=tmp_path,
                           env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    result = json.loads(probe.stdout)
    assert result["code"] == 0 and result["heavy"] == []
    assert result["out"]["spec"]["train"]["num_epochs"] == 2
    assert _cli(*args, cwd=tmp_path).returncode == 0


def test_encryption_key_comes_from_the_environment_and_is_never_shown(splits, tmp_path, monkeypatch):
    monkeypatch.setenv("OI_ENCRYPTION_KEY", "s3cr3t-key")
    plan = plan_job("train", jobs_root=tmp_path, automl_policy="off", data=_data(splits))
    assert plan.draft.get("encryption_key") == "${oc.env:OI_ENCRYPTION_KEY}"
    assert "s3cr3t-key" not in json.dumps(plan.as_dict())
    with pytest.raises(RequestError, match="set the environment variable OI_ENCRYPTION_KEY instead") as typed:
        plan_job("train", jobs_root=tmp_path, automl_policy="off", data=_data(splits),
                 overrides={"encryption_key": "typed-key"})
    assert "typed-key" not in str(typed.value)
    given = plan_job("train", jobs_root=tmp_path, automl_policy="off", data=_data(splits),
                     overrides={"encryption_key": "${oc.env:MY_KEY}"})
    assert given.draft.get("encryption_key") == "${oc.env:MY_KEY}"


def test_dataset_convert_writes_into_the_job_folder(tmp_path):
    plan = plan_job("dataset_convert", jobs_root=tmp_path,
                    overrides={"dataset_convert.format": "deeppcb", "dataset_convert.deeppcb.root_dir": "/data/x"})
    output = plan.draft.get("dataset_convert.data_convert_output_dir")
    assert output == str(tmp_path.resolve() / "<new-job-id>" / "results")
    assert plan.automl_policy.value == "off"


def test_run_checks_the_trainer_rules_before_writing_anything(splits, tmp_path):
    from runners.api import run_job

    with pytest.raises(RequestError, match="dataset.num_input: 3 does not match dataset.input_map"):
        run_job("train", jobs_root=tmp_path / "jobs", automl_policy="off", data=_data(splits),
                overrides={**TRAIN_OVERRIDES, "dataset.num_input": 3})
    assert not (tmp_path / "jobs").exists()


def test_plan_applies_the_trainers_cross_key_rules_that_run_would(splits, tmp_path):
    with pytest.raises(RequestError) as err:
        plan_job("train", jobs_root=tmp_path / "jobs", automl_policy="off", data=_data(splits),
                 overrides={**TRAIN_OVERRIDES, "batch_size": 1, "dataset.num_input": 3})
    assert "dataset.batch_size: training needs a batch size > 1 (got 1)" in err.value.problems
    assert any(p.startswith("dataset.num_input: 3 does not match dataset.input_map") for p in err.value.problems)
    with pytest.raises(RequestError, match=r"need min_batch_size <= opt_batch_size <= max_batch_size"):
        plan_job("gen_trt_engine", jobs_root=tmp_path / "jobs",
                 overrides={"gen_trt_engine.onnx_file": "/m.onnx", "gen_trt_engine.tensorrt.min_batch_size": 4})
    assert not (tmp_path / "jobs").exists()


def test_a_storage_url_with_its_password_is_refused_before_anything_is_written(splits, tmp_path):
    url = "postgresql://oi:s3cret-Passw0rd@db.example:5432/optuna"
    with pytest.raises(RequestError) as err:
        plan_job("train", jobs_root=tmp_path / "jobs", data=_data(splits), overrides={"automl.storage": url})
    text = str(err.value)
    assert "automl.storage: 'postgresql://oi:***@db.example:5432/optuna' holds a password" in text
    assert "${oc.env:OI_OPTUNA_STORAGE}" in text and "s3cret-Passw0rd" not in text
    plan = plan_job("train", jobs_root=tmp_path / "jobs", data=_data(splits),
                    overrides={"automl.storage": "${oc.env:OI_TEST_STORAGE,sqlite:///x.db}"})
    assert plan.draft.data["automl"]["storage"] == "${oc.env:OI_TEST_STORAGE,sqlite:///x.db}"
