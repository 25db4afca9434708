"""Acceptance chains through the runner with parent ids only: train → evaluate (best) → export → inference from
ONNX, and the resume of a crashed (killed) train. Every resolved value is in the record with its source."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from helpers import wait_until
from runner_support import TRAIN_OVERRIDES
from runners.api import cancel_job, job_status, plan_job, run_job, wait_job
from runners.errors import NotFoundError, RequestError
from runners.records import JobStore
from splits import runner_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chain_data")
    return {"train": runner_split(root / "train", 16, seed=0), "val": runner_split(root / "val", 8, seed=1),
            "test": runner_split(root / "test", 8, seed=2)}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("chain_jobs")


@pytest.fixture(scope="module")
def trained(data, jobs):
    record = run_job("train", jobs_root=jobs, request="plain training please",
                     data={"train_datasets": data["train"], "eval_dataset": data["val"]},
                     overrides={**TRAIN_OVERRIDES, "epochs": 3})
    assert record.status == "success", _log(record)
    return record


def _log(record) -> str:
    return f"{record.id} {record.status}: {record.message}\n" + Path(record.log_path).read_text()[-4000:]


def _value(record, key: str) -> tuple[object, str]:
    entry = record.decisions["spec_values"][key]
    return entry["value"], entry["source"]


def _best_epoch_file(train_record) -> str:
    """The best val_acc epoch from status.json (first of ties), computed independently of the runner."""
    folder = Path(train_record.decisions["results_folder"])
    epochs = {}
    for line in (folder / "status.json").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("status") == "RUNNING" and "epoch" in entry and "val_acc" in entry.get("kpi", {}):
            epochs[entry["epoch"]] = entry["kpi"]["val_acc"]
    best = max(sorted(epochs), key=lambda e: epochs[e])
    return next(p.name for p in folder.glob(f"model_epoch_{best:03d}_step_*.pth"))


def test_train_record(trained):
    assert trained.automl_policy == {"value": "off", "reason": "the request says 'plain training'",
                                     "phrase": "plain training"}
    assert trained.exit_code == 0 and trained.metrics["val_acc"] >= 0
    assert Path(trained.artifacts["checkpoint"]).is_file()
    assert Path(trained.results_dir) == Path(trained.job_dir) / "results"
    assert _value(trained, "results_dir") == (trained.results_dir, "runner: this job's results folder")


def test_evaluate_best_export_and_inference_from_onnx(trained, data, jobs):
    evaluated = run_job("evaluate", jobs_root=jobs, parent_job=trained.id, checkpoint="best",
                        data={"eval_dataset": data["test"]})
    assert evaluated.status == "success", _log(evaluated)
    assert evaluated.parent_id == trained.id
    checkpoint, source = _value(evaluated, "evaluate.checkpoint")
    assert Path(checkpoint).name == _best_epoch_file(trained)
    assert source.startswith(f"parent job {trained.id}: best: maximize val_acc")
    assert _value(evaluated, "dataset.input_map") == (TRAIN_OVERRIDES["dataset.input_map"],
                                                       f"parent job {trained.id}'s spec")
    assert _value(evaluated, "dataset.image_width")[0] == 32
    assert _value(evaluated, "dataset.test_dataset.csv_path")[0] == str(data["test"] / "dataset.csv")
    assert _value(evaluated, "dataset.infer_dataset.csv_path")[0] == str(data["test"] / "dataset.csv")
    assert evaluated.automl_policy["value"] == "off" and "never uses AutoML" in evaluated.automl_policy["reason"]
    assert "test_acc" in evaluated.metrics, evaluated.metrics
    assert (Path(evaluated.decisions["results_folder"]) / "metrics.json").is_file()

    exported = run_job("export", jobs_root=jobs, parent_job=trained.id)
    assert exported.status == "success", _log(exported)
    onnx_file, source = _value(exported, "export.onnx_file")
    assert Path(onnx_file).is_file() and Path(onnx_file).is_relative_to(exported.job_dir)
    assert source == "runner: new file in this job's results folder"
    assert Path(_value(exported, "export.checkpoint")[0]).name == _best_epoch_file(trained)

    inferred = run_job("inference", jobs_root=jobs, parent_job=exported.id, data={"inference_dataset": data["test"]})
    assert inferred.status == "success", _log(inferred)
    model, source = _value(inferred, "inference.checkpoint")
    assert model == onnx_file and source == f"parent job {exported.id}: export output oi_model.onnx"
    rows = (Path(inferred.decisions["results_folder"]) / "inference.csv").read_text().splitlines()
    assert len(rows) == 1 + 8

    engine_plan = plan_job("gen_trt_engine", jobs_root=jobs, parent_job=exported.id,
                           data={"calibration_dataset": [data["val"], data["test"]]}, overrides={"precision": "int8"})
    assert engine_plan.draft.get("gen_trt_engine.onnx_file") == onnx_file
    assert engine_plan.draft.get("gen_trt_engine.tensorrt.calibration.cal_image_dir") == [str(data["val"]),
                                                                                          str(data["test"])]
    assert engine_plan.draft.get("gen_trt_engine.trt_engine").endswith("/results/gen_trt_engine/oi_model.engine")
    assert engine_plan.draft.get("gen_trt_engine.tensorrt.calibration.cal_cache_file").endswith("cal_cache.bin")

    with pytest.raises(RequestError, match="--checkpoint applies to train parents"):
        plan_job("inference", jobs_root=jobs, parent_job=exported.id, checkpoint="best",
                 data={"inference_dataset": data["test"]})
    with pytest.raises(RequestError, match="is a evaluate job|is a inference job|takes the output of"):
        plan_job("export", jobs_root=jobs, parent_job=inferred.id)


def test_epoch_choice_of_a_parent(trained, jobs, data):
    plan = plan_job("evaluate", jobs_root=jobs, parent_job=trained.id, checkpoint="epoch=1",
                    data={"eval_dataset": data["test"]})
    assert Path(plan.draft.get("evaluate.checkpoint")).name.startswith("model_epoch_000_")
    with pytest.raises(NotFoundError, match=r"no checkpoint of epoch 7 .*existing: model_epoch_000"):
        plan_job("evaluate", jobs_root=jobs, parent_job=trained.id, checkpoint="epoch=7",
                 data={"eval_dataset": data["test"]})
    finetune = plan_job("train", jobs_root=jobs, parent_job=trained.id, automl_policy="off",
                        data={"train_datasets": data["train"], "eval_dataset": data["val"]})
    path, source = finetune.decisions()["spec_values"]["train.pretrained_model_path"].values()
    assert Path(path).name == _best_epoch_file(trained)
    assert source.startswith(f"parent job {trained.id}: pretrained weights, best: maximize val_acc")
    assert finetune.draft.get("train.resume_training_checkpoint_path") is None
    assert finetune.draft.get("dataset.input_map") == TRAIN_OVERRIDES["dataset.input_map"]


def test_resume_of_a_crashed_train_continues_from_its_last_epoch(data, jobs):
    first = run_job("train", jobs_root=jobs, automl_policy="off", detach=True,
                    data={"train_datasets": data["train"], "eval_dataset": data["val"]},
                    overrides={**TRAIN_OVERRIDES, "epochs": 40})
    folder = Path(first.decisions["results_folder"])
    def saved_an_epoch() -> bool:
        assert job_status(first.id, jobs).status in ("pending", "running"), _log(job_status(first.id, jobs))
        return bool(list(folder.glob("model_epoch_*.pth")))

    wait_until(saved_an_epoch, "the first epoch checkpoint")
    os.kill(job_status(first.id, jobs).pid, signal.SIGKILL)  # a crash: no FAILURE record, no clean exit
    crashed = wait_job(first.id, jobs, timeout_s=60)
    assert crashed.status == "failure" and crashed.exit_code == -signal.SIGKILL
    saved = sorted(folder.glob("model_epoch_*.pth"))
    last_epoch = int(saved[-1].name.split("_")[2])

    resumed = run_job("train", jobs_root=jobs, parent_job=first.id, automl_policy="off",
                      overrides={"epochs": last_epoch + 3})
    assert resumed.status == "success", _log(resumed)
    assert resumed.decisions["base_spec"].startswith(f"parent job {first.id}'s spec (resuming a failure train job)")
    path, source = _value(resumed, "train.resume_training_checkpoint_path")
    assert Path(path).parent == folder and source.startswith(f"parent job {first.id} (failure): resume from latest")
    assert resumed.decisions["spec_values"]["train.num_epochs"]["source"] == "override (shorthand 'epochs')"
    new_folder = Path(resumed.decisions["results_folder"])
    epochs = [json.loads(line).get("epoch") for line in (new_folder / "status.json").read_text().splitlines()]
    trained_epochs = sorted({e for e in epochs if e is not None})
    assert trained_epochs == list(range(last_epoch + 1, last_epoch + 3)), trained_epochs
    assert JobStore(jobs).load(resumed.id).parent_id == first.id


def test_cancel_a_detached_job(data, jobs):
    # far more epochs than can finish before the cancel; a 5-minute cap ends the job should the cancel fail
    record = run_job("train", jobs_root=jobs, automl_policy="off", detach=True,
                     data={"train_datasets": data["train"], "eval_dataset": data["val"]},
                     overrides={**TRAIN_OVERRIDES, "epochs": 1_000_000, "train.max_time_minutes": 5})
    wait_until(lambda: job_status(record.id, jobs).status == "running", "the detached job to run")
    cancelled = cancel_job(record.id, jobs)
    assert cancelled.status == "cancelled", _log(cancelled)
    with pytest.raises(NotFoundError, match="is cancelled, not success"):
        plan_job("export", jobs_root=jobs, parent_job=record.id)
