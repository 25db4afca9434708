"""Spec loading and validation: TAO specs load; every kind of mistake gets a clear message."""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import TAO_SPEC, run_cli, tao_spec, write_spec
from optical_inspection.errors import SpecError
from optical_inspection.spec import load_spec


def _problems(path, action="train", overrides=()):
    with pytest.raises(SpecError) as info:
        load_spec(path, list(overrides), action=action)
    return "\n".join(info.value.problems)


def test_tao_spec_dry_run_succeeds():
    proc = run_cli("train", "-e", str(TAO_SPEC), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "model_type: Siamese_3" in proc.stdout
    # ${train.checkpoint_interval} and TAO's results_dir back-fill are resolved.
    config = load_spec(TAO_SPEC, [], action="export")
    assert config.train.validation_interval == 5
    assert config.export.onnx_file == "/tmp/oi_tao_spec_results/export/oi_model.onnx"
    assert config.export.batch_size == 16


def test_overrides_are_yaml_scalars_and_lists():
    config = load_spec(TAO_SPEC, ["train.num_epochs=3", "dataset.augmentation_config.rgb_input_mean=[0.5,0.5,0.5]",
                                  "model.model_type=Compact", "train.optim.lr=1e-3"], action="train")
    assert config.train.num_epochs == 3
    assert config.dataset.augmentation_config.rgb_input_mean == [0.5, 0.5, 0.5]
    assert config.model.model_type == "Compact"
    assert config.train.optim.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.update(colour="red"), "colour: unknown key"),
        (lambda s: s["train"].update(num_epoch=3), "did you mean 'train.num_epochs'"),
        (lambda s: s["dataset"].update(batch_size="sixteen"), "dataset.batch_size: Input should be a valid integer"),
        (lambda s: s["dataset"].update(batch_size="16"), "dataset.batch_size: Input should be a valid integer"),
        (lambda s: s["train"]["optim"].update(lr=-0.001), "train.optim.lr: Input should be greater than 0"),
        (lambda s: s["dataset"].update(batch_size=1), "dataset.batch_size: training needs a batch size > 1"),
        (lambda s: s["dataset"]["train_dataset"].update(csv_path="???"),
         "dataset.train_dataset.csv_path: missing required value for train"),
        (lambda s: s["train"].update(num_epochs="${train.epochs_total}"), "train.num_epochs: cannot resolve"),
        (lambda s: s["model"].update(model_type="Siamese_4"), "model.model_type: Input should be"),
        (lambda s: s["dataset"].update(num_input=3), "dataset.num_input: 3 does not match dataset.input_map"),
        (lambda s: s["train"]["optim"].update(type="RMSprop"), "train.optim.type"),
    ],
)
def test_bad_spec_is_reported_with_the_key(tmp_path, edit, expected):
    spec = tao_spec()
    edit(spec)
    problems = _problems(write_spec(tmp_path / "spec.yaml", spec))
    assert expected in problems


def test_all_problems_are_reported_at_once(tmp_path):
    spec = tao_spec()
    spec["train"]["num_epoch"] = 3
    spec["train"]["optim"]["lr"] = -1.0
    spec["dataset"]["batch_size"] = 1
    problems = _problems(write_spec(tmp_path / "spec.yaml", spec))
    for part in ("num_epoch", "train.optim.lr", "dataset.batch_size"):
        assert part in problems


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  model_type: Siamese_3\n  margin: [2.0\ntrain:\n  num_epochs: 3\n")
    proc = run_cli("train", "-e", str(path), "--dry-run")
    assert proc.returncode == 2
    assert "YAML syntax error at line" in proc.stderr and str(path) in proc.stderr


def test_missing_spec_file_exits_2(tmp_path):
    proc = run_cli("train", "-e", str(tmp_path / "nope.yaml"), "--dry-run")
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


@pytest.mark.parametrize("override", ["train.num_epochs", "=5"])
def test_malformed_override_exits_2(override):
    proc = run_cli("train", "-e", str(TAO_SPEC), override, "--dry-run")
    assert proc.returncode == 2
    assert "is not key=value" in proc.stderr


def test_references_reach_defaults_and_lists_and_good_ones_survive_a_bad_one(tmp_path):
    spec = tao_spec()
    del spec["dataset"]["batch_size"]                                   # not written: its default (32) is used
    spec["train"]["num_epochs"] = "${dataset.batch_size}"
    spec["dataset"]["augmentation_config"]["random_rotate"]["angle_list"] = [90, "${dataset.image_width}"]
    config = load_spec(write_spec(tmp_path / "spec.yaml", spec), [], action="train")
    assert config.train.num_epochs == 32 and config.dataset.batch_size == 32
    assert config.dataset.augmentation_config.random_rotate.angle_list == [90.0, float(config.dataset.image_width)]

    spec["train"]["checkpoint_interval"] = "${train.nope}"
    problems = _problems(write_spec(tmp_path / "bad.yaml", spec))
    assert problems.splitlines() == [                                   # no type errors from unresolved refs
        "train.checkpoint_interval: cannot resolve '${train.nope}': Interpolation key 'train.nope' not found",
        "train.validation_interval: cannot resolve '${train.checkpoint_interval}': Interpolation key 'train.nope' "
        "not found"]                                                    # the TAO spec's chained reference


def test_no_eval_resolver(tmp_path):
    spec = tao_spec()
    spec["train"]["num_epochs"] = "${eval:__import__('os').getpid()}"
    assert "cannot resolve" in _problems(write_spec(tmp_path / "spec.yaml", spec))


def test_evaluate_accepts_onnx_instead_of_checkpoint(tmp_path):
    spec = tao_spec()
    spec["evaluate"]["checkpoint"] = "???"
    path = write_spec(tmp_path / "spec.yaml", spec)
    assert "evaluate.checkpoint: missing required value" in _problems(path, action="evaluate")
    config = load_spec(path, ["evaluate.onnx_file=/tmp/m.onnx"], action="evaluate")
    assert config.evaluate.onnx_file == "/tmp/m.onnx"


def test_config_import_is_torch_free():
    code = "import sys, optical_inspection.config, optical_inspection.spec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_lists_actions_and_keys():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "dataset_convert" in proc.stdout
    proc = run_cli("train", "--help")
    assert "train.optim.lr" in proc.stdout
    assert "dataset.augmentation_config.random_flip.hflip_probability" in proc.stdout


def test_the_placeholder_is_omegaconfs_missing_marker():
    """One '???' for the trainer, the runner and the generators, and it is OmegaConf's own."""
    from omegaconf import MISSING

    from optical_inspection.dotted import PLACEHOLDER

    assert PLACEHOLDER == MISSING
