"""The train action in-process: names, latest file, status KPIs, metadata, seeds, resume/pretrained options."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from model_helpers import config_of, train_spec
from optical_inspection.actions import train as train_action
from optical_inspection.errors import OIError
from optical_inspection.status import StatusLogger, read_status
from optical_inspection.strict_json import dumps
from splits import model_splits

TAO_KPIS = {"train_loss", "train_acc", "train_fpr", "val_loss", "val_acc", "val_fpr", "val_auroc"}


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return model_splits(tmp_path_factory.mktemp("data"))


def _train(splits: dict, results: Path, **dotted) -> dict:
    config = config_of(train_spec(splits, results.parent, **dotted), "train")
    results.mkdir(parents=True, exist_ok=True)
    return train_action.run(config, results, StatusLogger(results / "status.json"))


def test_checkpoints_latest_status_and_metadata(splits: dict, tmp_path: Path) -> None:
    results = tmp_path / "train"
    out = _train(splits, results)
    names = sorted(p.name for p in results.glob("*.pth"))
    assert names == ["model_epoch_000_step_00006.pth", "model_epoch_001_step_00012.pth", "oi_model_latest.pth"]
    latest = results / "oi_model_latest.pth"
    assert latest.is_file() and not latest.is_symlink()
    assert latest.read_bytes() == (results / "model_epoch_001_step_00012.pth").read_bytes()
    assert out["artifacts"]["checkpoint"] == str(latest)

    data = torch.load(latest, weights_only=True)
    meta = data["oi_meta"]
    assert meta["model"]["model_type"] == "Compact" and meta["epoch"] == 1 and meta["step"] == 12
    assert meta["dataset"]["strip_shape"] == [3, 64, 32] and meta["dataset"]["lights"] == ["LowAngleLight",
                                                                                              "WhiteLight"]
    assert meta["dataset"]["rgb_input_mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert isinstance(meta["threshold"], float) and meta["val_epoch"] == 1
    assert {"optimizer_states", "lr_schedulers", "loops"} <= set(data)
    assert all(k.startswith("model.") for k in data["state_dict"])
    for name in names:  # every checkpoint has its JSON sidecar, the same metadata as its oi_meta
        stored = torch.load(results / name, weights_only=True)["oi_meta"]
        assert json.loads((results / f"{name}.json").read_text()) == json.loads(dumps(stored))

    records = [r for r in read_status(results / "status.json") if r["message"] == "Training loop in progress"]
    assert [r["epoch"] for r in records] == [0, 1]
    assert all(TAO_KPIS <= set(r["kpi"]) for r in records)
    assert records[-1]["max_epoch"] == 1 and records[-1]["step"] == 12 and "eta" in records[-1]
    assert TAO_KPIS <= set(out["kpi"])


def test_same_seed_same_weights_other_seed_differs(splits: dict, tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        _train(splits, tmp_path / name / "train", train__num_epochs=1, train__seed=seed)
        runs[name] = torch.load(tmp_path / name / "train" / "oi_model_latest.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


def test_step_interval_final_validation_and_configured_threshold(splits: dict, tmp_path: Path) -> None:
    results = tmp_path / "train"
    _train(splits, results, train__num_epochs=3, train__validation_interval=2, train__checkpoint_interval=4,
           train__checkpoint_interval_unit="step", model__threshold=1.0e9)
    names = sorted(p.name for p in results.glob("model_epoch_*.pth"))
    assert names == ["model_epoch_000_step_00004.pth", "model_epoch_001_step_00008.pth",
                     "model_epoch_001_step_00012.pth", "model_epoch_002_step_00016.pth",
                     "model_epoch_002_step_00018.pth"]
    meta = torch.load(results / "oi_model_latest.pth", weights_only=True)["oi_meta"]
    assert meta["val_epoch"] == 2 and meta["threshold"] is not None  # last epoch validated after fit
    # val_acc is TAO's total accuracy at the configured threshold: nothing is flagged at 1e9
    n_pass = sum(1 for line in Path(splits["val"][0]).read_text().splitlines()[1:] if ",PASS," in line)
    assert meta["metrics"]["val_acc"] == pytest.approx(100 * n_pass / 24)


def test_pretrained_weights_and_explicit_resume(splits: dict, tmp_path: Path) -> None:
    first = tmp_path / "first" / "train"
    _train(splits, first, train__num_epochs=1)
    source = torch.load(first / "oi_model_latest.pth", weights_only=True)["state_dict"]
    second = tmp_path / "second" / "train"
    _train(splits, second, train__num_epochs=1, train__pretrained_model_path=str(first / "oi_model_latest.pth"),
           train__optim__lr=1e-12, train__optim__weight_decay=0.0)
    tuned = torch.load(second / "oi_model_latest.pth", weights_only=True)["state_dict"]
    conv = "model.encoder.0.0.weight"
    torch.testing.assert_close(tuned[conv], source[conv], atol=1e-7, rtol=0)

    resumed = tmp_path / "resumed" / "train"
    _train(splits, resumed, train__num_epochs=2,
           train__resume_training_checkpoint_path=str(first / "model_epoch_000_step_00006.pth"))
    assert sorted(p.name for p in resumed.glob("model_epoch_*.pth")) == ["model_epoch_001_step_00012.pth"]

    with pytest.raises(OIError, match="must end in"):
        _train(splits, tmp_path / "bad" / "train", train__resume_training_checkpoint_path=str(first / "x.bin"))
    with pytest.raises(OIError, match="cannot resume: the checkpoint's model differs"):
        _train(splits, tmp_path / "other" / "train", model__base_channels=16,
               train__resume_training_checkpoint_path=str(first / "oi_model_latest.pth"))


def test_tensorboard_and_interval_checks(splits: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    results = tmp_path / "train"
    _train(splits, results, train__num_epochs=1, train__tensorboard__enabled=True,
           train__tensorboard__infrequent_logging_frequency=1, wandb__enable=True, wandb__project="tao")
    assert "wandb.* keys are accepted for TAO compatibility and ignored" in caplog.text  # TAO's keys: no W&B
    assert not (results / "wandb").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(results / "lightning_logs" / "version_1"), size_guidance={"images": 4})
    events.Reload()
    assert {"image/compare_sample", "image/golden_sample"} <= set(events.Tags()["images"])
    assert {"train_loss", "val_acc", "val_auroc"} <= set(events.Tags()["scalars"])
    # Intervals longer than the run (a TAO spec shortened with epochs=1): the last epoch is still checkpointed,
    # validated and calibrated, where TAO stops with an assertion.
    short = tmp_path / "x" / "train"
    out = _train(splits, short, train__num_epochs=1, train__validation_interval=2, train__checkpoint_interval=5)
    assert [p.name for p in short.glob("model_epoch_*.pth")] == ["model_epoch_000_step_00006.pth"]
    meta = torch.load(short / "oi_model_latest.pth", weights_only=True)["oi_meta"]
    assert meta["val_epoch"] == 0 and isinstance(meta["threshold"], float)
    assert "val_auroc" in out["kpi"]                                     # the SUCCESS record's KPIs


def test_pass_only_split_trains_on_synthetic_defects(splits: dict, tmp_path: Path) -> None:
    csv_path, _ = splits["train"]
    only_pass = tmp_path / "pass.csv"
    lines = csv_path.read_text().splitlines()
    only_pass.write_text("\n".join([lines[0]] + [x for x in lines[1:] if ",PASS," in x]) + "\n")
    out = _train(splits, tmp_path / "t" / "train", dataset__train_dataset__csv_path=str(only_pass),
                 train__num_epochs=1, dataset__synthetic_defects__rate=0.5)
    assert (tmp_path / "t" / "train" / "oi_model_latest.pth").is_file()
    assert "val_auroc" in out["kpi"]  # without synthetic defects this split is refused (the next test)


def test_no_label_in_validation_or_untrainable_split_fails_clearly(splits: dict, tmp_path: Path) -> None:
    csv_path, images = splits["train"]
    only_pass = tmp_path / "pass.csv"
    lines = csv_path.read_text().splitlines()
    only_pass.write_text("\n".join([lines[0]] + [x for x in lines[1:] if ",PASS," in x]) + "\n")
    with pytest.raises(OIError, match="no defect rows.*synthetic_defects.enable: true"):
        _train(splits, tmp_path / "t" / "train", dataset__train_dataset__csv_path=str(only_pass),
               dataset__synthetic_defects__enable=False)
    assert not list((tmp_path / "t" / "train").glob("*.pth"))
    assert os.path.isdir(images)
