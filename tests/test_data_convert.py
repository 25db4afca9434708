"""dataset_convert: DeepPCB crops (deterministic, PASS crops touching no box) and TAO's factory-PCB CSVs."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optical_inspection.data.convert_deeppcb import convert_deeppcb, crop_windows, read_boxes
from optical_inspection.data.convert_factory import convert_factory, parse_board_name
from optical_inspection.data.datamodule import OIDataModule
from optical_inspection.errors import DataError
from optical_inspection.spec import validate_dict
from tests.helpers import REPO, folder_digest, run_cli, write_spec

DEEPPCB = REPO.parent / "shared" / "datasets" / "deeppcb-trainval"  # beside the checkout, never inside it
BOXES = {"12000001": "10 10 30 30 1\n100 90 120 130 3\n", "12000002": "50,60,70,75,6\n",
         "34000001": "5 120 40 150 2\n140 5 155 30 4\n", "34000002": "70 70 90 90 5\n"}


@pytest.fixture(scope="module")
def fake_deeppcb(tmp_path_factory) -> Path:
    """A DeepPCB-shaped folder: 2 groups x 2 grey 160x160 pairs, boxes, a split list."""
    root = tmp_path_factory.mktemp("deeppcb")
    rng = np.random.default_rng(0)
    lines = []
    for stem, boxes in BOXES.items():
        group = stem[:5]
        img_dir = root / "PCBData" / f"group{group}" / group
        box_dir = img_dir.with_name(f"{group}_not")
        img_dir.mkdir(parents=True, exist_ok=True)
        box_dir.mkdir(parents=True, exist_ok=True)
        board = (rng.random((160, 160)) > 0.5).astype(np.uint8) * 255
        Image.fromarray(board).save(img_dir / f"{stem}_temp.jpg")
        Image.fromarray(255 - board).save(img_dir / f"{stem}_test.jpg")
        (box_dir / f"{stem}.txt").write_text(boxes)
        lines.append(f"group{group}/{group}/{stem}.jpg group{group}/{group}_not/{stem}.txt")
    (root / "trainval.txt").write_text("\n".join(lines) + "\n")
    return root


def _convert(root: Path, out: Path, **kw) -> dict:
    return convert_deeppcb(root, out, window_size=32, jitter=4, pass_per_fail=2.0, **kw)


def test_deeppcb_rows_labels_and_determinism(fake_deeppcb, tmp_path):
    a = _convert(fake_deeppcb, tmp_path / "a", seed=7)
    b = _convert(fake_deeppcb, tmp_path / "b", seed=7, threads=1)
    c = _convert(fake_deeppcb, tmp_path / "c", seed=8)
    assert a["csv_path"].read_bytes() == b["csv_path"].read_bytes()
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    assert a["csv_path"].read_bytes() != c["csv_path"].read_bytes()
    assert folder_digest(tmp_path / "a") != folder_digest(tmp_path / "c")
    rows = list(csv.DictReader(a["csv_path"].open()))
    assert list(rows[0]) == ["input_path", "golden_path", "label", "object_name", "group", "crop_x", "crop_y"]
    assert [r["label"] for r in rows if r["label"] != "PASS"] == ["open", "mousebite", "pin-hole", "short", "spur",
                                                                  "copper"]
    assert a["fail"] == 6 and 0 < a["pass"] <= 2 * 6
    assert {r["group"] for r in rows} == {"12000", "34000"}
    assert all(r["input_path"] == f"{r['group']}/test" and r["golden_path"] == f"{r['group']}/golden" for r in rows)
    crop = Image.open(tmp_path / "a" / "images" / "12000" / "test" / f"{rows[0]['object_name']}.jpg")
    assert crop.size == (32, 32) and crop.mode == "L"
    assert not list((tmp_path / "a").glob(".*"))  # no temp folder left


def test_deeppcb_split_loads(fake_deeppcb, tmp_path):
    out = _convert(fake_deeppcb, tmp_path / "s", groups=["34000"])
    cfg = validate_dict({"dataset": {"input_map": None, "image_height": 32, "image_width": 32, "batch_size": 4,
                                     "workers": 0, "infer_dataset": {"csv_path": str(out["csv_path"]),
                                                                     "images_dir": str(tmp_path / "s")}}}, None)
    dm = OIDataModule(cfg)
    n = sum(len(b["index"]) for b in dm.predict_dataloader())
    assert n == out["pairs"] and {r["group"] for r in dm.table("predict").rows} == {"34000"}


def test_pass_crops_touch_no_box_and_fail_crops_hold_their_box():
    boxes = np.array([[10, 10, 30, 30, 1], [100, 90, 120, 115, 3], [60, 5, 70, 20, 2]])
    windows = crop_windows(boxes, (160, 160), 32, 8, 5.0, np.random.default_rng(0))
    assert [w[2] for w in windows[:3]] == ["open", "mousebite", "short"]
    for (left, top, _), (x1, y1, x2, y2, _) in zip(windows[:3], boxes):
        assert left <= x1 and x2 <= left + 32 and top <= y1 and y2 <= top + 32
    passes = windows[3:]
    assert passes and all(w[2] == "PASS" for w in passes)
    for left, top, _ in passes:
        assert 0 <= left <= 128 and 0 <= top <= 128
        assert not ((left <= boxes[:, 2]) & (left + 32 >= boxes[:, 0]) & (top <= boxes[:, 3]) &
                    (top + 32 >= boxes[:, 1])).any()


def test_deeppcb_errors(fake_deeppcb, tmp_path):
    with pytest.raises(DataError, match="no PCBData"):
        _convert(tmp_path, tmp_path / "o")
    with pytest.raises(DataError, match=r"groups \['99999'\] are not in the split list"):
        _convert(fake_deeppcb, tmp_path / "o", groups=["99999"])
    with pytest.raises(DataError, match="split list .* does not exist"):
        _convert(fake_deeppcb, tmp_path / "o", split_list="test.txt")
    bad = tmp_path / "b.txt"
    bad.write_text("1 2 3 4 9\n")
    with pytest.raises(DataError, match="line 1: expected 'x1 y1 x2 y2 type'"):
        read_boxes(bad)
    assert not (tmp_path / "o").exists()


def test_deeppcb_unreadable_image_leaves_nothing(fake_deeppcb, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(fake_deeppcb, root)
    (root / "PCBData" / "group34000" / "34000" / "34000002_test.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="34000002_test.jpg"):
        _convert(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(DataError):
        _convert(root, tmp_path / "kept")
    assert list((tmp_path / "kept").iterdir()) == []


def test_dataset_convert_action_via_cli(fake_deeppcb, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", {"results_dir": str(tmp_path / "results"), "dataset_convert": {
        "format": "deeppcb", "data_convert_output_dir": str(tmp_path / "out"),
        "deeppcb": {"root_dir": str(fake_deeppcb), "window_size": 32, "groups": ["12000"]}}})
    done = run_cli("dataset_convert", "-e", str(spec))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "dataset.csv").is_file()
    status = (tmp_path / "results" / "dataset_convert" / "status.json").read_text()
    assert '"SUCCESS"' in status and '"fail_pairs": 3' in status
    missing = write_spec(tmp_path / "bad.yaml", {"results_dir": str(tmp_path / "r2"), "dataset_convert": {
        "format": "deeppcb", "data_convert_output_dir": str(tmp_path / "out2")}})
    done = run_cli("dataset_convert", "-e", str(missing))
    assert done.returncode == 2 and "dataset_convert.deeppcb.root_dir" in done.stderr


@pytest.mark.skipif(not DEEPPCB.is_dir(), reason=f"real DeepPCB data not present at {DEEPPCB}")
def test_real_deeppcb_group_converts_and_every_row_loads(tmp_path):
    out = convert_deeppcb(DEEPPCB, tmp_path, groups=["44000"], window_size=64, jitter=8, pass_per_fail=1.0)
    assert out["source_images"] == 50 and out["fail"] > 0 and out["pass"] > 0
    cfg = validate_dict({"dataset": {"input_map": None, "image_height": 64, "image_width": 64, "batch_size": 64,
                                     "workers": 0, "infer_dataset": {"csv_path": str(out["csv_path"]),
                                                                     "images_dir": str(tmp_path)}}}, None)
    dm = OIDataModule(cfg)
    assert sum(len(b["index"]) for b in dm.predict_dataloader()) == out["pairs"]


# -- factory PCB ---------------------------------------------------------------------------------------------
LIGHTS3 = ("Low", "Solder", "White")


def _board_csv(path: Path, project: str, side: str, board: str, comps: dict[str, str], lights=LIGHTS3) -> None:
    rows = []
    for comp, defect in comps.items():
        for light in lights:
            rows.append({"Project": project, "TOP_BOT": side, "BoardSN": board, "CompName": comp, "TB_Panel": "1",
                         "directory": f"{board}/imgs", "LightingCondition": light,
                         "ConfirmDefect": defect if light == "Solder" else "PASS", "MachineDefect": "",
                         "Status": "", "image_name": f"{comp}@1_{light}.jpg"})
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def factory(tmp_path) -> Path:
    root = tmp_path / "raw"
    for d in ("train", "val", "all", "golden"):
        (root / d).mkdir(parents=True)
    boards = {("train", "x_ProjA~TOP_B1.csv"): ("ProjA", "TOP", "B1", {"R_1": "PASS", "C2": "Missing"}),
              ("train", "x_ProjA_BOT_B2_r.csv"): ("ProjA", "BOT", "B2", {"U3": ""}),
              ("val", "x_ProjA~TOP_B3.csv"): ("ProjA", "TOP", "B3", {"R_1": "Shift", "C9": "PASS"})}
    for (split, name), (project, side, board, comps) in boards.items():
        (root / split / name).write_text("summary")
        _board_csv(root / "all" / name, project, side, board, comps)
    for side, comps in (("TOP", ("R_1", "C2")), ("BOT", ("U3",))):
        lines = ["CompName,TOP_BOT,TB_Panel,directory"] + [f"{c},{side},1,/mnt/x/golden/images/ProjA{side}"
                                                            for c in comps]
        (root / "golden" / f"ProjA{side}.csv").write_text("\n".join(lines) + "\n")
    return root


def _factory_cfg(root: Path, out: Path, **kw):
    return validate_dict({"dataset_convert": {"root_dataset_dir": str(root), "data_convert_output_dir": str(out),
                                              "train_pcb_dataset_dir": "train", "val_pcb_dataset_dir": "val",
                                              "all_pcb_dataset_dir": "all", "golden_csv_dir": "golden", **kw}},
                         None).dataset_convert


def _read(path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path)))


def test_factory_conversion(factory, tmp_path):
    result = convert_factory(_factory_cfg(factory, tmp_path / "new" / "out"))  # output folder is created
    train = _read(result["artifacts"]["train_csv"])
    assert list(train[0]) == ["input_path", "golden_path", "label", "object_name"]
    assert {(r["object_name"], r["label"], r["input_path"], r["golden_path"]) for r in train} == {
        ("R_1@1", "PASS", "ProjA/AOI_T/B1/imgs", "golden/images/ProjATOP"),  # '_' in a component name survives
        ("C2@1", "Missing", "ProjA/AOI_T/B1/imgs", "golden/images/ProjATOP"),
        ("U3@1", "PASS", "ProjA/AOI_B/B2/imgs", "golden/images/ProjABOT")}
    val = _read(result["artifacts"]["val_csv"])
    assert [(r["object_name"], r["label"]) for r in val] == [("R_1@1", "Shift")]  # C9 has no golden: dropped
    assert result["counts"]["val"]["no_golden"] == 1


def test_factory_side_filter_works(factory, tmp_path):
    result = convert_factory(_factory_cfg(factory, tmp_path / "o", bot_top="BOT"))
    assert [r["object_name"] for r in _read(result["artifacts"]["train_csv"])] == ["U3@1"]
    assert _read(result["artifacts"]["val_csv"]) == []


def test_factory_incomplete_lights_dropped(factory, tmp_path):
    _board_csv(factory / "all" / "x_ProjA~TOP_B1.csv", "ProjA", "TOP", "B1", {"R_1": "PASS"}, lights=LIGHTS3[:2])
    result = convert_factory(_factory_cfg(factory, tmp_path / "o", bot_top="TOP"))
    assert result["counts"]["train"] == {"pairs": 0, "fail": 0, "dropped_light_rows": 2, "no_golden": 0}


def test_factory_errors(factory, tmp_path):
    with pytest.raises(DataError, match="does not follow"):
        parse_board_name("bad.csv")
    with pytest.raises(DataError, match="no board CSVs match project_name='Nope'"):
        convert_factory(_factory_cfg(factory, tmp_path / "o", project_name="Nope"))
    (factory / "golden" / "ProjABOT.csv").unlink()
    with pytest.raises(DataError, match="ProjABOT.csv' does not exist"):
        convert_factory(_factory_cfg(factory, tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_dataset_convert_through_the_runner_writes_only_into_its_job_folder(fake_deeppcb, tmp_path, monkeypatch):
    from runners.api import run_job

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    record = run_job("dataset_convert", jobs_root=tmp_path / "jobs",
                     overrides={"dataset_convert.format": "deeppcb",
                                "dataset_convert.deeppcb.root_dir": str(fake_deeppcb),
                                "dataset_convert.deeppcb.window_size": 32})
    assert record.status == "success", Path(record.log_path).read_text()[-2000:]
    results = Path(record.job_dir) / "results"
    assert (results / "dataset.csv").is_file() and (results / "images").is_dir()
    assert (results / "dataset_convert" / "status.json").is_file()
    assert (results / "dataset_convert" / "experiment.yaml").is_file()
    assert list(cwd.iterdir()) == [], "nothing is written where the runner was started"


def test_deeppcb_boxes_csv_holds_every_box_inside_each_fail_crop(fake_deeppcb, tmp_path):
    out = _convert(fake_deeppcb, tmp_path / "b", seed=7)
    assert out["boxes_path"] == tmp_path / "b" / "boxes.csv"
    rows = {(r["input_path"], r["object_name"]): r for r in csv.DictReader(out["csv_path"].open())}
    boxes = list(csv.DictReader(out["boxes_path"].open()))
    assert list(boxes[0]) == ["input_path", "object_name", "x1", "y1", "x2", "y2", "type"]
    assert {(b["input_path"], b["object_name"]) for b in boxes} == {k for k, r in rows.items() if r["label"] != "PASS"}
    for b in boxes:
        crop = rows[(b["input_path"], b["object_name"])]
        x1, y1, x2, y2 = (int(b[k]) for k in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= 32 and 0 <= y1 < y2 <= 32
        source = read_boxes(fake_deeppcb / "PCBData" / f"group{crop['group']}" / f"{crop['group']}_not"
                            / f"{crop['object_name'].rsplit('_', 1)[0]}.txt")
        left, top = int(crop["crop_x"]), int(crop["crop_y"])
        clipped = np.clip(source[:, :4] - [left, top, left, top], 0, 32)
        assert [x1, y1, x2, y2] in clipped.tolist()  # a board box, clipped to the crop, in crop pixels
    own = [b for b in boxes if b["type"] == rows[(b["input_path"], b["object_name"])]["label"]]
    assert len({(b["input_path"], b["object_name"]) for b in own}) == 6  # each crop holds its own box


def test_deeppcb_board_split_feeds_inspect_with_its_boxes(fake_deeppcb, tmp_path):
    from optical_inspection.actions import inspect
    from optical_inspection.status import StatusLogger

    out = _convert(fake_deeppcb, tmp_path / "o", boards=True)
    boards = out["boards_dir"]
    assert boards == tmp_path / "o" / "boards" and not list((tmp_path / "o").glob(".*"))
    rows = list(csv.DictReader((boards / "dataset.csv").open()))
    assert [r["input_path"] for r in rows] == [f"{s[:5]}/{s}_test.jpg" for s in BOXES]
    for r in rows:
        stem = r["input_path"].split("/")[1].rsplit("_", 1)[0]
        source = fake_deeppcb / "PCBData" / f"group{stem[:5]}" / stem[:5]
        assert (boards / "images" / r["golden_path"]).read_bytes() == (source / f"{stem}_temp.jpg").read_bytes()
        assert (boards / "images" / r["input_path"]).read_bytes() == (source / f"{stem}_test.jpg").read_bytes()
    boxes = list(csv.DictReader((boards / "boxes.csv").open()))
    assert len(boxes) == 6 and boxes[0] == {"input_path": "12000/12000001_test.jpg", "x1": "10", "y1": "10",
                                            "x2": "30", "y2": "30", "type": "open"}
    split = {"csv_path": str(boards / "dataset.csv"), "images_dir": str(boards / "images")}
    spec = {"results_dir": str(tmp_path / "r"), "inspect": {"checkpoint": "pretrained"},
            "dataset": {"inspect_dataset": split}}
    results = tmp_path / "r" / "inspect"
    results.mkdir(parents=True)
    inspect.run(validate_dict(spec, "inspect"), results, StatusLogger(results / "status.json"))
    assert list(csv.DictReader((results / "boards.csv").open()))[0]["input_path"] == rows[0]["input_path"]
