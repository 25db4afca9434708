"""Hostile and broken inputs (issue 19, input half): each gets a clean, keyed error or the documented behaviour,
never a traceback or a silent success."""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import dataset_spec
from optical_inspection import cli
from optical_inspection.data.datamodule import OIDataModule
from optical_inspection.data.images import decode_image
from optical_inspection.data.table import read_split
from optical_inspection.errors import DataError, OIError, SpecError
from optical_inspection.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from optical_inspection.models.factory import build_network
from optical_inspection.spec import load_spec, read_yaml, validate_dict
from optical_inspection.status import StatusLogger
from runners import cli as runner_cli
from runners.errors import RequestError
from runners.records import JobStore
from runners.specbuild import parse_overrides

REPO = Path(__file__).resolve().parents[1]


def _strict(text: str) -> object:
    """json.loads that fails on NaN/Infinity (what a strict JSON parser does)."""
    def refuse(name: str) -> None:
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def _runner(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, dict, str]:
    code = runner_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, _strict(out), err


def _train_spec(synthetic_split, tmp_path: Path, **train) -> Path:
    spec = dataset_spec(*synthetic_split)
    spec["results_dir"] = str(tmp_path / "results")
    spec["train"] = {"num_epochs": 1, "progress_bar": False, "accelerator": "cpu", **train}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# ---------------------------------------------------------------- 5: non-finite numbers and diverged training

@pytest.mark.parametrize("override", ["train.optim.lr=.inf", "model.margin=.nan", "train.optim.lr=-.inf"])
def test_non_finite_spec_numbers_are_refused_by_key(override):
    key = override.split("=")[0]
    with pytest.raises(SpecError) as err:
        load_spec(None, [override])
    assert any(p.startswith(f"{key}: ") and "finite" in p for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("text", ['{"train.optim.lr": Infinity}', '{"margin": NaN}', '{"lr": -Infinity}'])
def test_runner_overrides_refuse_nan_and_infinity(text):
    with pytest.raises(RequestError, match="not a finite number"):
        parse_overrides(text)


def test_diverging_training_fails_without_a_checkpoint(synthetic_split, tmp_path, capsys):
    spec = _train_spec(synthetic_split, tmp_path, optim={"type": "SGD", "lr": 1e20, "lr_scheduler": "none"})
    code = cli.main(["train", "-e", str(spec)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "training diverged at epoch 1" in err and "train.optim.lr" in err and "Traceback" not in err
    results = tmp_path / "results" / "train"
    assert not list(results.glob("*.pth"))
    last = json.loads((results / "status.json").read_text().splitlines()[-1])
    assert last["status"] == "FAILURE" and "diverged" in last["message"]


# ---------------------------------------------------------------- 6: 16-bit images

def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    wide = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I;16")
    decoded, size = decode_image(str(tmp_path / "wide.png"))
    expected = np.round(wide.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert size == (32, 32) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded[..., 0], expected)
    assert len(np.unique(decoded)) > 200  # a full grey ramp, not a clipped white plane


def test_float_image_is_refused_naming_the_file(tmp_path):
    Image.fromarray(np.ones((8, 8), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(DataError, match=r"float\.tif has 32-bit float pixels"):
        decode_image(str(tmp_path / "float.tif"), where="x.csv line 2: ")


# ---------------------------------------------------------------- 7: validation split without PASS rows

def test_validation_split_without_pass_rows_is_refused_before_training(synthetic_split, tmp_path):
    csv_path, images = synthetic_split
    lines = csv_path.read_text().splitlines()
    defects = [line for line in lines[1:] if ",PASS," not in line]
    val_csv = tmp_path / "val.csv"
    val_csv.write_text("\n".join([lines[0], *defects]) + "\n")
    spec = dataset_spec(csv_path, images)
    spec["dataset"]["validation_dataset"] = {"csv_path": str(val_csv), "images_dir": str(images)}
    module = OIDataModule(validate_dict(spec, "train"))
    with pytest.raises(DataError, match=rf"validation split {val_csv} has no PASS rows"):
        module.setup("fit")


# ---------------------------------------------------------------- 8: tracebacks become clean errors

def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height (what a decompression bomb looks like to the decoder)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    return path


def _case_section_as_list(tmp_path, capsys):
    with pytest.raises(SpecError, match=r"train: expected a mapping of keys, got \[1, 2\]"):
        load_spec(None, ["train=[1,2]"], action="train")


def _case_results_dir_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "afile")}))
    code = cli.main(["dataset_convert", "-e", str(spec), "dataset_convert.format=deeppcb",
                     f"dataset_convert.deeppcb.root_dir={tmp_path}",
                     f"dataset_convert.data_convert_output_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot create the results folder" in err and "a file is in the way" in err, err


def _case_jobs_root_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, out, err = _runner(capsys, "list", "--jobs-root", str(tmp_path / "afile" / "jobs"))
    assert code == 2 and "is under the file" in out["error"], out


def _case_deeply_nested_overrides(tmp_path, capsys):
    deep = '{"train.optim": ' + "[" * 990 + "]" * 990 + "}"
    code, out, err = _runner(capsys, "plan", "train", "--overrides", deep, "--jobs-root", str(tmp_path / "j"))
    assert code == 2 and "nested" in out["error"], out


def _case_decompression_bomb(tmp_path, capsys):
    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(DataError, match=r"^data\.csv line 7: image .*bomb\.png is too large to decode safely"):
        decode_image(str(bomb), (32, 32), where="data.csv line 7: ")


def _case_huge_num_epochs(tmp_path, capsys):
    with pytest.raises(SpecError, match=r"train\.num_epochs: Input should fit in a 64-bit integer"):
        load_spec(None, [f"train.num_epochs={10**23}"])


def _case_corrupt_job_record(tmp_path, capsys):
    store = JobStore(tmp_path / "jobs")
    record = store.create("train", None)
    Path(record.job_dir, "job.json").write_text('{"id": "trunc')
    code, out, err = _runner(capsys, "status", record.id, "--jobs-root", str(store.root))
    assert code == 3 and "unreadable or corrupt" in out["error"], out


def _case_negative_strip_shape(tmp_path, capsys):
    model = build_network({"model_type": "Compact"}, (3, 32, 32))
    path = save_checkpoint(tmp_path / "crafted.pth", model, {
        "model": {"model_type": "Compact"}, "dataset": {"strip_shape": [3, -64, 32]}})
    with pytest.raises(OIError, match=r"crafted\.pth': strip_shape \[3, -64, 32\]: height and width must be"):
        load_checkpoint(path)


@pytest.mark.parametrize("case", [_case_section_as_list, _case_results_dir_is_a_file, _case_jobs_root_under_a_file,
                                  _case_deeply_nested_overrides, _case_decompression_bomb, _case_huge_num_epochs,
                                  _case_corrupt_job_record, _case_negative_strip_shape],
                         ids=lambda f: f.__name__[6:])
def test_hostile_input_is_a_clean_error(case, tmp_path, capsys):
    case(tmp_path, capsys)
    assert "Traceback" not in capsys.readouterr().err


def test_huge_epoch_count_eta_does_not_overflow():
    from optical_inspection.models.callbacks import _duration

    assert _duration(3.5) == "0:00:03.500000"
    assert _duration(1.0e30).endswith(" days")


# ---------------------------------------------------------------- 10: pickled objects named from the opcodes

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_os_system_pickle_is_named_not_called_corrupt(tmp_path, zip_format):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "x": _Evil()}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(OIError, match=r"holds a pickled Python object \((posix|nt)\.system\)"):
        read_checkpoint(path)


# ---------------------------------------------------------------- 11: strict JSON out

def test_runner_stdout_and_records_are_strict_json(tmp_path, capsys):
    store = JobStore(tmp_path / "jobs")
    record = store.create("train", None)
    store.update(record.id, lambda r: setattr(r, "metrics", {"val_auroc": float("nan"), "val_loss": float("inf"),
                                                             "val_acc": 50.0}))
    saved = _strict(Path(record.job_dir, "job.json").read_text())
    assert saved["metrics"] == {"val_auroc": None, "val_loss": None, "val_acc": 50.0}
    code, out, _ = _runner(capsys, "show", record.id, "--jobs-root", str(store.root))
    assert code == 0 and out["metrics"]["val_auroc"] is None


def test_status_json_is_strict(tmp_path):
    status = StatusLogger(tmp_path / "status.json")
    status.write("RUNNING", "epoch", kpi={"val_auroc": float("nan"), "loss": np.float32("inf")}, eta=float("nan"))
    line = _strict((tmp_path / "status.json").read_text())
    assert line["kpi"] == {"val_auroc": None, "loss": None} and line["eta"] is None


# ---------------------------------------------------------------- 14: absolute CSV folders, as in TAO

def test_absolute_csv_folders_are_used_as_in_tao(synthetic_split, tmp_path, make_config):
    csv_path, images = synthetic_split
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    rows = []
    for line in lines[1:]:
        cells = dict(zip(header, line.split(",")))
        cells["input_path"] = str(images / cells["input_path"])  # absolute; golden stays relative
        rows.append(",".join(cells[c] for c in header))
    absolute_csv = tmp_path / "dataset.csv"
    absolute_csv.write_text("\n".join([lines[0], *rows]) + "\n")
    unused_root = tmp_path / "elsewhere"
    unused_root.mkdir()
    (unused_root / "golden").symlink_to(images / "golden")
    table = read_split(absolute_csv, unused_root, make_config(absolute_csv, unused_root).dataset)
    assert len(table) == len(lines) - 1
    assert table.test_paths(0)[0].is_relative_to(images) and table.test_paths(0)[0].is_file()
    doc = (REPO / "skills/optical-inspection/references/data.md").read_text()
    assert "or absolute (then used as it is, as in TAO" in doc


# ---------------------------------------------------------------- 15: minor

def _minor_duplicate_yaml_key(tmp_path, capsys):
    spec = tmp_path / "dup.yaml"
    spec.write_text("train:\n  num_epochs: 1\n  seed: 3\n  num_epochs: 2\n")
    with pytest.raises(SpecError, match=r"line 4, column 3: duplicate key 'num_epochs' \(first given on line 2\)"):
        read_yaml(spec)
    spec.write_text("base: &b {num_epochs: 3, seed: 1}\ntrain:\n  <<: *b\n  num_epochs: 5\n")  # merge keys still work
    assert read_yaml(spec)["train"] == {"num_epochs": 5, "seed": 1}


def _minor_spec_is_a_directory(tmp_path, capsys):
    with pytest.raises(SpecError, match="is a directory"):
        read_yaml(tmp_path)


def _minor_unknown_key_and_failed_interpolation(tmp_path, capsys):
    with pytest.raises(SpecError) as err:
        load_spec(None, ["train.bogus=${nope.x}"])
    text = str(err.value)
    assert "train.bogus: cannot resolve" in text and "train.bogus: unknown key" in text, text


def _minor_negative_tail(tmp_path, capsys):
    code, out, _ = _runner(capsys, "logs", "any-job", "--tail", "-5", "--jobs-root", str(tmp_path))
    assert code == 2 and out["error"].startswith("--tail -5"), out


def _minor_file_as_jobs_root(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, out, _ = _runner(capsys, "list", "--jobs-root", str(tmp_path / "afile"))
    assert code == 2 and "is a file" in out["error"], out


def _minor_article_in_parent_errors(tmp_path, capsys):
    store = JobStore(tmp_path / "jobs")
    parent = store.create("evaluate", None)
    Path(parent.spec_path).write_text("results_dir: elsewhere\n")
    store.update(parent.id, lambda r: setattr(r, "status", "success"))
    code, out, _ = _runner(capsys, "plan", "export", "--parent-job", parent.id, "--jobs-root", str(store.root))
    assert code == 2 and "is an evaluate job" in out["error"] and "output of a train job" in out["error"], out


def _minor_oversized_spec(tmp_path, capsys):
    spec = tmp_path / "big.yaml"
    spec.write_text("train:\n  num_epochs: 1\n" + "# padding\n" * 200_000)
    with pytest.raises(SpecError, match="too large for a spec"):
        read_yaml(spec)


def _minor_alias_bomb(tmp_path, capsys):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 5)]
    spec = tmp_path / "bomb.yaml"
    spec.write_text("\n".join(levels) + "\n")
    with pytest.raises(SpecError, match="expands to more than 100,000 values"):
        read_yaml(spec)


@pytest.mark.parametrize("case", [_minor_duplicate_yaml_key, _minor_spec_is_a_directory,
                                  _minor_unknown_key_and_failed_interpolation, _minor_negative_tail,
                                  _minor_file_as_jobs_root, _minor_article_in_parent_errors, _minor_oversized_spec,
                                  _minor_alias_bomb], ids=lambda f: f.__name__[7:])
def test_minor_input_problems(case, tmp_path, capsys):
    case(tmp_path, capsys)
