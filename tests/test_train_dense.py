"""The Compact model's dense map trained from defect boxes (dataset.train_dataset.boxes_path), PASS pairs and
synthetic defects: it learns where the defects are, its head loads and is left out where it does not fit."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_helpers import config_of, train_spec
from optical_inspection.actions import train as train_action
from optical_inspection.data.boxes import draw_masks, read_boxes_csv, split_boxes
from optical_inspection.data.table import read_split
from optical_inspection.errors import DataError
from optical_inspection.models.checkpoint import load_checkpoint
from optical_inspection.models.losses import cell_targets
from optical_inspection.status import StatusLogger
from optical_inspection.data.synthetic import make_synthetic_split
from splits import LIGHTS, model_splits


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return model_splits(tmp_path_factory.mktemp("dense"), n_train=96, n_val=48)


@pytest.fixture(scope="module")
def line_splits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One light, 48 px, registered to half a pixel: a line where a small network learns the map in seconds."""
    root = tmp_path_factory.mktemp("line")
    return {name: make_synthetic_split(root / name, n, lights=LIGHTS, size=48, defect_rate=0.4, seed=seed,
                                       max_shift=0.5) for name, n, seed in (("train", 160, 0), ("val", 60, 1))}


EPOCHS = 45


def _train(splits: dict, results: Path, **dotted) -> dict:
    config = config_of(train_spec(splits, results.parent, **dotted), "train")
    results.mkdir(parents=True, exist_ok=True)
    return train_action.run(config, results, StatusLogger(results / "status.json"))


def _boxes(split: tuple[Path, Path]) -> Path:
    return split[0].parent / "boxes.csv"


def test_the_dense_map_learns_where_the_boxed_defects_are(line_splits: dict, tmp_path: Path) -> None:
    splits = line_splits
    results = tmp_path / "t" / "train"
    _train(splits, results, train__num_epochs=EPOCHS, dataset__train_dataset__boxes_path=str(_boxes(splits["train"])),
           dataset__image_height=48, dataset__image_width=48, dataset__batch_size=16)
    model, meta = load_checkpoint(str(results / "oi_model_latest.pth"))
    assert meta["model"]["dense_map"] is True and model.dense is not None
    config = config_of(train_spec(splits, tmp_path, dataset__image_height=48, dataset__image_width=48))
    table = read_split(*splits["val"], config.dataset)
    from optical_inspection.data.preprocess import Preprocessor

    pre = Preprocessor(config.dataset)
    test, golden = pre.load_pairs(table, range(len(table)))
    per_row = read_boxes_csv(_boxes(splits["val"]), table)
    boxes = split_boxes(per_row, torch.full((len(table), 2), 48).numpy(), table.labels)
    strip_mask = draw_masks(torch.from_numpy(boxes.boxes), 48, 48).repeat(1, 1, 2, 1)  # two lights: [B, 1, 96, 48]
    with torch.inference_mode():
        cells = model.eval().dense_logits(model.mixed(test, golden))  # [B, 12, 6]
    target = cell_targets(strip_mask, *cells.shape[-2:])[:, 0].bool()
    fail = torch.from_numpy(table.labels == 1)
    inside = target.flatten(1).gather(1, cells.flatten(1).argmax(1)[:, None])[:, 0]
    share = target[fail].float().mean()  # where a peak at random would land
    assert share < 0.3 and inside[fail].float().mean() > share + 0.2  # the map's peak lies on the defect
    peak = cells.amax((1, 2))
    ranked = (peak[fail][:, None] > peak[~fail][None, :]).float().mean()  # the map's peak alone as a pair score
    assert ranked > 0.6, ranked


def test_dense_heads_are_left_out_where_they_do_not_fit(splits: dict, tmp_path: Path) -> None:
    plain = tmp_path / "plain" / "train"
    _train(splits, plain, train__num_epochs=1, model__dense_map=False)
    _, meta = load_checkpoint(str(plain / "oi_model_latest.pth"))
    assert "dense_map" not in meta["model"]
    # weights without a dense head (this one, or the bundled ones) start a dense-map network; the head is new
    dense = tmp_path / "dense" / "train"
    _train(splits, dense, train__num_epochs=1, train__pretrained_model_path=str(plain / "oi_model_latest.pth"))
    _train(splits, tmp_path / "bundled" / "train", train__num_epochs=1, train__pretrained_model_path="pretrained")
    state = torch.load(dense / "oi_model_latest.pth", weights_only=True)["state_dict"]
    assert "model.dense.weight" in state


def test_boxes_need_the_decoded_cache(splits: dict, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"boxes_path needs the decoded cache .*cache_memory_mb above 0"):
        _train(splits, tmp_path / "t" / "train", train__num_epochs=1, dataset__cache_memory_mb=0,
               dataset__train_dataset__boxes_path=str(_boxes(splits["train"])))
