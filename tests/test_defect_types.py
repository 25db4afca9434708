"""Defect kinds: learnt from the training labels by Compact's type head, reported by evaluate, inference and
inspect; off with model.type_head false or with a single defect label."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_helpers import config_of, train_spec
from optical_inspection.cli import run_action
from optical_inspection.data.defect_types import defect_types, kind_indices
from optical_inspection.models.checkpoint import load_checkpoint
from optical_inspection.models.compact import Compact
from optical_inspection.models.losses import type_loss
from splits import model_splits


def test_kinds_come_from_the_non_pass_labels() -> None:
    assert defect_types(["PASS", " open", "short", "pass", "open", ""]) == ["open", "short"]
    assert defect_types(["PASS", "FAIL", "FAIL"]) == []  # one kind: nothing to tell apart
    got = kind_indices(["short", "PASS", " open", "scratch", ""], ["open", "short"])
    assert got.tolist() == [1, -1, 0, -1, -1] and got.dtype == np.int64


def test_the_type_loss_uses_only_rows_of_known_kind() -> None:
    logits = torch.zeros(4, 3, requires_grad=True)
    kinds = torch.tensor([-1, 2, -1, 0])
    loss = type_loss(logits, kinds)
    assert loss.item() == pytest.approx(np.log(3.0))  # mean over the two known rows of a uniform guess
    loss.backward()
    assert logits.grad is not None and logits.grad[[0, 2]].abs().sum() == 0 and logits.grad[[1, 3]].abs().sum() > 0
    none = type_loss(torch.zeros(2, 3, requires_grad=True), torch.tensor([-1, -1]))
    assert none.item() == 0.0 and none.requires_grad


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """A Compact trained (from the bundled weights) on synthetic pairs whose labels name their defect kinds."""
    root = tmp_path_factory.mktemp("types")
    splits = model_splits(root / "data", n_train=48, n_val=24)
    spec = train_spec(splits, root / "results", train__num_epochs=2)
    assert run_action("train", config_of(spec, "train")) == 0
    return spec, root / "results" / "train" / "oi_model_latest.pth"


def test_training_on_named_kinds_stores_them_and_inference_names_them(trained: tuple[dict, Path]) -> None:
    spec, checkpoint = trained
    kinds = defect_types([r["label"] for r in _csv_rows(Path(spec["dataset"]["train_dataset"]["csv_path"]))])
    model, meta = load_checkpoint(checkpoint)
    assert meta["model"]["defect_types"] == kinds and len(kinds) >= 2
    assert isinstance(model, Compact) and model.type_classifier is not None
    assert model.type_classifier.out_features == len(kinds)

    spec["inference"] = {"checkpoint": str(checkpoint), "threshold": -1e9}  # every row FAIL: every row typed
    assert run_action("inference", config_of(spec, "inference")) == 0
    rows = _csv_rows(Path(spec["results_dir"]) / "inference" / "inference.csv")
    assert rows and all(r["prediction"] == "FAIL" and r["defect_type"] in kinds for r in rows)
    assert all(0.0 < float(r["defect_type_probability"]) <= 1.0 for r in rows)

    spec["inference"].update({"threshold": 1e9, "results_dir": str(Path(spec["results_dir"]) / "all_pass")})
    assert run_action("inference", config_of(spec, "inference")) == 0  # every row PASS: no type given
    rows = _csv_rows(Path(spec["results_dir"]) / "all_pass" / "inference.csv")
    assert all(r["prediction"] == "PASS" and r["defect_type"] == "" and r["defect_type_probability"] == ""
               for r in rows)


def test_evaluate_reports_the_type_accuracy(trained: tuple[dict, Path]) -> None:
    spec, checkpoint = trained
    spec["evaluate"] = {"checkpoint": str(checkpoint)}
    assert run_action("evaluate", config_of(spec, "evaluate")) == 0
    metrics = json.loads((Path(spec["results_dir"]) / "evaluate" / "metrics.json").read_text())
    truth = [r["label"] for r in _csv_rows(Path(spec["dataset"]["test_dataset"]["csv_path"]))]
    known = int((kind_indices(truth, metrics["defect_types"]) >= 0).sum())
    assert metrics["defect_type_rows"] == known > 0
    assert 0.0 <= metrics["defect_type_accuracy"] <= 100.0
    assert set(metrics["defect_type_recall"]) <= set(metrics["defect_types"])


@pytest.mark.parametrize("case", ["type_head_off", "one_kind"])
def test_no_type_head_without_kinds_or_when_switched_off(case: str, tmp_path: Path) -> None:
    splits = model_splits(tmp_path / "data", n_train=24, n_val=12)
    if case == "one_kind":  # TAO's PASS/FAIL labels
        for csv_path, _ in splits.values():
            rows = _csv_rows(csv_path)
            for r in rows:
                r["label"] = "PASS" if r["label"] == "PASS" else "FAIL"
            with open(csv_path, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    extra = {"model__type_head": False} if case == "type_head_off" else {}
    spec = train_spec(splits, tmp_path / "results", train__num_epochs=1, **extra)
    assert run_action("train", config_of(spec, "train")) == 0
    checkpoint = tmp_path / "results" / "train" / "oi_model_latest.pth"
    model, meta = load_checkpoint(checkpoint)
    assert "defect_types" not in meta["model"] and isinstance(model, Compact) and model.type_classifier is None
    spec["inference"] = {"checkpoint": str(checkpoint)}
    assert run_action("inference", config_of(spec, "inference")) == 0
    header = next(csv.reader(open(tmp_path / "results" / "inference" / "inference.csv")))
    assert "defect_type" not in header


def test_board_boxes_are_typed_by_the_head() -> None:
    from optical_inspection.boards.detect import BoardInspector, typed_rows

    torch.manual_seed(0)
    model = Compact((3, 64, 64), base_channels=8, num_types=3)
    inspector = BoardInspector(model, [0.5] * 3, [0.25] * 3, 64, threshold=-1e9, register=False, max_rotation=0.0,
                               tile=1024, min_area=0, device=torch.device("cpu"), types=["a", "b", "c"])
    golden = torch.randint(0, 255, (1, 96, 160), dtype=torch.uint8)
    test = golden.clone()
    test[:, 40:50, 100:110] = 255 - test[:, 40:50, 100:110]
    result = inspector.inspect(test, golden)
    assert len(result.boxes) >= 1 and len(result.types) == len(result.boxes)
    assert set(result.types) <= {"a", "b", "c"}
    probs = result.type_probabilities
    assert probs.shape == (len(result.boxes), 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert result.types == [["a", "b", "c"][i] for i in probs.argmax(1)]
    boxes, scores, kinds, kind_probs = typed_rows(result, inspector.types, 2)  # two rows per box, likeliest first
    assert len(boxes) == 2 * len(result.boxes) and np.array_equal(boxes[::2], result.boxes)
    assert kinds[::2] == result.types and np.array_equal(scores[::2], result.scores)
    assert (kind_probs[::2] >= kind_probs[1::2]).all() and np.allclose(kind_probs[::2], probs.max(1))
    inspector.types = []
    untyped = inspector.inspect(test, golden)
    assert set(untyped.types) == {"defect"}
    assert np.isnan(typed_rows(untyped, [], 2)[3]).all() and len(typed_rows(untyped, [], 2)[0]) == len(untyped.boxes)


@pytest.mark.parametrize("views", [2, 4, 8])
def test_type_views_average_the_kinds_of_the_flipped_and_turned_crops(views: int) -> None:
    from optical_inspection.boards.detect import VIEWS, BoardInspector

    torch.manual_seed(1)
    model = Compact((3, 64, 64), base_channels=8, num_types=3).eval()
    kw = dict(threshold=-1e9, register=False, max_rotation=0.0, tile=1024, min_area=0, device=torch.device("cpu"),
              types=["a", "b", "c"])
    golden = torch.randint(0, 255, (1, 96, 160), dtype=torch.uint8)
    test = golden.clone()
    test[:, 40:50, 100:110] = 255 - test[:, 40:50, 100:110]
    one = BoardInspector(model, [0.5] * 3, [0.25] * 3, 64, **kw).inspect(test, golden)
    many = BoardInspector(model, [0.5] * 3, [0.25] * 3, 64, type_views=views, **kw).inspect(test, golden)
    assert np.array_equal(one.boxes, many.boxes) and np.allclose(many.type_probabilities.sum(1), 1.0, atol=1e-5)
    assert not np.allclose(one.type_probabilities, many.type_probabilities)  # other views, other kinds' odds
    # by hand: the first box's crop (64 px, centred, inside the board), each view through the type head
    box = one.boxes[0]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = int(np.clip(round(cx - 32), 0, 160 - 64)), int(np.clip(round(cy - 32), 0, 96 - 64))
    norm = lambda im: ((im.float() / 255 - 0.5) / 0.25).expand(3, -1, -1)[None, :, y0:y0 + 64, x0:x0 + 64]  # noqa: E731
    with torch.inference_mode():
        probs = [torch.softmax(model.score_and_types(v(norm(test)), v(norm(golden)))[1], 1) for v in VIEWS[:views]]
    np.testing.assert_allclose(many.type_probabilities[0], torch.stack(probs).mean(0)[0].numpy(), atol=1e-5)


def test_boxes_grow_to_the_minimum_side_inside_the_board() -> None:
    from optical_inspection.boards.detect import grow_boxes

    boxes = torch.tensor([[10.0, 10.0, 20.0, 14.0], [0.0, 0.0, 60.0, 50.0], [95.0, 2.0, 99.0, 6.0]])
    grown = grow_boxes(boxes, 40, width=100, height=80)
    assert grown[0].tolist() == [0.0, 0.0, 35.0, 32.0]  # centred on (15, 12), clipped at the top-left
    assert grown[1].tolist() == [0.0, 0.0, 60.0, 50.0]  # already larger: unchanged
    assert grown[2].tolist() == [77.0, 0.0, 100.0, 24.0]  # clipped at the right border
    assert torch.equal(grow_boxes(boxes, 0, 100, 80), boxes)


def test_overlapping_boxes_keep_the_highest_scoring_one() -> None:
    from optical_inspection.boards.detect import suppress_overlaps

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0],
                          [0.0, 0.0, 10.0, 5.0]])
    scores = torch.tensor([1.0, 3.0, 2.0, 0.5])
    assert suppress_overlaps(boxes, scores, 0.5).tolist() == [1, 2, 3]  # box 0 overlaps box 1 by IoU 0.68
    assert suppress_overlaps(boxes, scores, 0.3).tolist() == [1, 2]  # box 3 overlaps box 1 by IoU 0.35 too
    assert suppress_overlaps(boxes, scores, 1.0).tolist() == [1, 2, 0, 3]  # 1: every box, by score


def test_fine_tuning_keeps_the_type_head_only_for_the_same_kinds(trained: tuple[dict, Path]) -> None:
    from optical_inspection.actions.train import initialise
    from optical_inspection.models.checkpoint import model_state, read_checkpoint
    from optical_inspection.models.factory import dataset_geometry
    from optical_inspection.models.lightning_model import OIModule

    spec, checkpoint = trained
    config = config_of(spec, "train")
    _, meta = load_checkpoint(checkpoint)
    stored = model_state(read_checkpoint(checkpoint))["type_classifier.weight"]
    same = OIModule(config, dataset_geometry(config.dataset), meta["model"]["defect_types"])
    initialise(same, str(checkpoint), config)
    assert torch.equal(same.model.type_classifier.weight, stored)
    other = OIModule(config, dataset_geometry(config.dataset), ["open", "short"])
    before = other.model.type_classifier.weight.detach().clone()
    initialise(other, str(checkpoint), config)  # other kinds: the head keeps its own initialisation
    assert torch.equal(other.model.type_classifier.weight, before)
    assert torch.equal(other.model.classifier.weight, same.model.classifier.weight)  # the rest is loaded


@pytest.mark.parametrize("heatmaps", [False, True])
def test_the_onnx_export_names_the_same_kinds(trained: tuple[dict, Path], heatmaps: bool, tmp_path: Path) -> None:
    from optical_inspection.deploy.onnx_backend import OnnxScorer

    spec, checkpoint = trained
    spec = json.loads(json.dumps(spec))
    onnx_file = tmp_path / "model.onnx"
    spec["export"] = {"checkpoint": str(checkpoint), "onnx_file": str(onnx_file), "heatmaps": heatmaps}
    assert run_action("export", config_of(spec, "export")) == 0  # export.verify compares every output with torch
    _, meta = load_checkpoint(checkpoint)
    scorer = OnnxScorer(onnx_file, provider="cpu")
    assert scorer.defect_types == meta["model"]["defect_types"] and scorer.supports_maps == heatmaps

    rows = {}
    for name, key, path in (("torch", "checkpoint", checkpoint), ("onnx", "onnx_file", onnx_file)):
        spec["inference"] = {key: str(path), "threshold": -1e9, "results_dir": str(tmp_path / name)}
        assert run_action("inference", config_of(spec, "inference")) == 0
        rows[name] = _csv_rows(tmp_path / name / "inference.csv")
    assert [r["defect_type"] for r in rows["onnx"]] == [r["defect_type"] for r in rows["torch"]]
    np.testing.assert_allclose([float(r["defect_type_probability"]) for r in rows["onnx"]],
                               [float(r["defect_type_probability"]) for r in rows["torch"]], atol=1e-4)


@pytest.mark.parametrize("key, value", [("inspect.nms_iou", 1.5), ("inspect.nms_iou", -0.1),
                                        ("inspect.min_box_side", -4), ("model.type_head", "sometimes"),
                                        ("inspect.kinds_per_box", 0)])
def test_bad_values_of_the_new_keys_are_refused_by_name(key: str, value: object) -> None:
    from optical_inspection.errors import SpecError
    from optical_inspection.spec import set_dotted, validate_dict

    spec: dict = {"inspect": {"checkpoint": "pretrained"}}
    set_dotted(spec, key, value)
    with pytest.raises(SpecError) as err:
        validate_dict(spec, "inspect")
    assert key in str(err.value)
