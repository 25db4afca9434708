"""The box typer: patches centred on boxes, trained by the train action on the training boxes' kinds, stored in the
checkpoint and used by inspect to name each box's kind."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from model_helpers import config_of, train_spec
from optical_inspection.actions import train as train_action
from optical_inspection.data.boxes import read_boxes
from optical_inspection.data.datamodule import OIDataModule
from optical_inspection.data.synthetic import make_synthetic_split
from optical_inspection.models import box_typer
from optical_inspection.models.checkpoint import load_checkpoint
from optical_inspection.models.compact import Compact
from optical_inspection.status import StatusLogger

SIZE = 48
EPOCHS = 60  # passes over the 240 training boxes: the step count, not the machine's speed, decides the fit


@pytest.fixture(scope="module")
def one_light(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One grey-free RGB light per side, 48 px, registered to half a pixel, half the pairs defective."""
    root = tmp_path_factory.mktemp("typer")
    return {name: make_synthetic_split(root / name, n, lights=(), size=SIZE, defect_rate=0.5, seed=seed,
                                       max_shift=0.5) for name, n, seed in (("train", 400, 0), ("val", 160, 1))}


def _spec(splits: dict, results: Path, boxes: Path | None, **dotted) -> dict:
    return train_spec(splits, results.parent, dataset__input_map=None, dataset__image_height=SIZE,
                      dataset__image_width=SIZE, dataset__batch_size=16,
                      dataset__train_dataset__boxes_path=str(boxes) if boxes else None, **dotted)


def _train(splits: dict, results: Path, boxes: Path | None, **dotted) -> dict:
    config = config_of(_spec(splits, results, boxes, **dotted), "train")
    results.mkdir(parents=True, exist_ok=True)
    return train_action.run(config, results, StatusLogger(results / "status.json"))


def test_patches_are_the_pixels_around_each_centre_with_the_border_repeated() -> None:
    images = torch.arange(2 * 3 * 10 * 12).view(2, 3, 10, 12)
    got = box_typer.patches(images, torch.tensor([0, 1]), torch.tensor([[5.0, 4.0], [0.4, 9.0]]), size=4)
    assert got.shape == (2, 3, 4, 4)
    assert torch.equal(got[0], images[0, :, 2:6, 3:7])  # centre (5, 4): rows 2..5, columns 3..6
    padded = torch.nn.functional.pad(images[1:].float(), (2, 2, 2, 2), mode="replicate")[0].long()
    assert torch.equal(got[1], padded[:, 9:13, 0:4])  # centre (0, 9) on the corner: the border repeats


def test_the_train_action_fits_a_box_typer_that_names_the_kinds(one_light: dict, tmp_path: Path) -> None:
    boxes = one_light["train"][0].parent / "boxes.csv"
    results = tmp_path / "t" / "train"
    _train(one_light, results, boxes, train__num_epochs=1, train__box_typer_epochs=EPOCHS,
           train__box_typer_minutes=2.0)
    model, meta = load_checkpoint(str(results / "oi_model_latest.pth"))
    assert meta["model"]["box_typer"] is True and isinstance(model.box_typer, box_typer.BoxTyper)
    assert "Box typer trained" in (results / "status.json").read_text()
    # the typer's kinds on the validation split's boxes (other boards) against always naming the commonest kind
    val_only = {"train": one_light["val"], "val": one_light["val"]}
    config = config_of(_spec(val_only, tmp_path / "v" / "x", one_light["val"][0].parent / "boxes.csv"), "train")
    data = OIDataModule(config)
    data.types = tuple(meta["model"]["defect_types"])
    test, golden, kinds = box_typer.training_patches(data.dataset("train"), data.pre)
    with torch.inference_mode():
        guess = model.box_typer(data.pre.normalize(test), data.pre.normalize(golden)).argmax(1)
        torch.manual_seed(0)
        untrained = box_typer.BoxTyper(len(data.types)).eval()(data.pre.normalize(test), data.pre.normalize(golden))
    accuracy = (guess == kinds).float().mean().item()
    commonest = np.bincount(kinds.numpy()).max() / len(kinds)  # 10 kinds: 0.22 here
    # 60 passes over 240 boxes of 10 kinds: 0.34 here (DeepPCB's 6 kinds after 6 minutes: 0.94)
    assert len(kinds) > 60 and accuracy > commonest + 0.05, (accuracy, commonest)
    assert (untrained.argmax(1) == kinds).float().mean().item() < accuracy


def test_box_kinds_come_from_the_type_column_else_from_a_single_box_row(one_light: dict, tmp_path: Path) -> None:
    csv_path, _ = one_light["val"]
    rows = list(csv.DictReader(open(csv_path)))
    per_image: dict[tuple[str, str], int] = {}
    original = list(csv.DictReader(open(csv_path.parent / "boxes.csv")))
    for row in original:
        per_image[row["input_path"], row["object_name"]] = per_image.get((row["input_path"], row["object_name"]), 0) + 1
    untyped = tmp_path / "untyped.csv"
    with open(untyped, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["input_path", "object_name", "x1", "y1", "x2", "y2"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(original)
    val_only = {"train": one_light["val"], "val": one_light["val"]}
    config = config_of(_spec(val_only, tmp_path / "r" / "x", untyped), "train")
    data = OIDataModule(config)
    data.types = tuple(sorted({r["label"] for r in rows} - {"PASS"}))
    dataset = data.dataset("train")
    assert dataset.boxes is not None and dataset.boxes.kinds is not None
    _, types = read_boxes(untyped, dataset.table)
    for r, row_types in enumerate(types):  # typed boxes: the row's kind on one-box rows, unknown (-1) otherwise
        expected = [data.types.index(rows[r]["label"])] if len(row_types) == 1 else [-1] * len(row_types)
        assert dataset.boxes.kinds[r, :len(row_types)].tolist() == expected
    assert {n for n in per_image.values()} >= {1, 2}  # both cases occur


def test_without_any_box_of_known_kind_the_typer_is_left_out(one_light: dict, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    boxes = tmp_path / "boxes.csv"
    with open(one_light["train"][0].parent / "boxes.csv") as f:
        original = list(csv.DictReader(f))
    with open(boxes, "w", newline="") as f:  # every box of every row twice, no type: no row has a single box
        writer = csv.DictWriter(f, fieldnames=["input_path", "object_name", "x1", "y1", "x2", "y2"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(original + original)
    results = tmp_path / "t" / "train"
    with caplog.at_level(logging.WARNING):
        _train(one_light, results, boxes, train__num_epochs=1)
    model, meta = load_checkpoint(str(results / "oi_model_latest.pth"))
    assert "box_typer" not in meta["model"] and model.box_typer is None
    assert "no training box has a known kind" in caplog.text


def test_inspect_names_the_kinds_with_the_box_typer() -> None:
    from optical_inspection.boards.detect import VIEWS, BoardInspector

    torch.manual_seed(2)
    model = Compact((3, 64, 64), base_channels=8, num_types=3, dense_map=True, box_typer=True).eval()
    assert model.box_typer is not None
    golden = torch.randint(0, 255, (1, 96, 160), dtype=torch.uint8)
    test = golden.clone()
    test[:, 40:50, 100:110] = 255 - test[:, 40:50, 100:110]
    result = BoardInspector(model, [0.5] * 3, [0.25] * 3, 64, threshold=-1e9, register=False, max_rotation=0.0,
                            tile=1024, min_area=0, device=torch.device("cpu"), types=["a", "b", "c"],
                            type_views=4).inspect(test, golden)
    assert len(result.boxes)
    centre = torch.from_numpy((result.boxes[:1, :2] + result.boxes[:1, 2:]) / 2)
    norm = lambda im: ((im.float() / 255 - 0.5) / 0.25).expand(3, -1, -1)[None]  # noqa: E731
    t, g = (box_typer.patches(norm(side), torch.zeros(1, dtype=torch.long), centre) for side in (test, golden))
    with torch.inference_mode():
        probs = torch.stack([torch.softmax(model.box_typer(v(t), v(g)), 1) for v in VIEWS[:4]]).mean(0)
    np.testing.assert_allclose(result.type_probabilities[0], probs[0].numpy(), atol=1e-5)
    assert result.types[0] == "abc"[int(probs.argmax())]
