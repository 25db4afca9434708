"""inference: input rows + siamese_score/prediction/threshold, in order, with or without labels, any batch size."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from model_helpers import config_of, run_inference, seeded_checkpoint, train_spec
from optical_inspection.actions import inference
from optical_inspection.errors import OIError
from optical_inspection.status import StatusLogger
from splits import model_splits


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    """Splits, a checkpoint without a stored threshold, and the val CSV without its label column."""
    root = tmp_path_factory.mktemp("infer")
    splits = model_splits(root, n_train=8, n_val=21)
    checkpoint = seeded_checkpoint(root / "model.pth", splits, seed=1)
    rows = list(csv.reader(splits["val"][0].read_text().splitlines()))
    col = rows[0].index("label")
    unlabelled = root / "unlabelled.csv"
    unlabelled.write_text("".join(",".join(r[:col] + r[col + 1:]) + "\n" for r in rows))
    return splits, checkpoint, unlabelled


_run = run_inference


def test_rows_in_order_with_scores_predictions_and_threshold(setup, tmp_path: Path) -> None:
    splits, checkpoint, unlabelled = setup
    rows = _run(splits, checkpoint, tmp_path / "a", dataset__infer_dataset__csv_path=str(unlabelled))
    source = list(csv.DictReader(unlabelled.open()))
    assert list(rows[0]) == list(source[0]) + ["siamese_score", "prediction", "threshold"]
    assert [r["object_name"] for r in rows] == [r["object_name"] for r in source]
    scores = np.array([float(r["siamese_score"]) for r in rows])
    assert {r["threshold"] for r in rows} == {"0.0"}  # Compact's natural threshold: logit 0
    assert [r["prediction"] for r in rows] == ["FAIL" if s > 0.0 else "PASS" for s in scores]


def test_batch_size_does_not_change_scores_and_spec_threshold_wins(setup, tmp_path: Path) -> None:
    splits, checkpoint, _ = setup
    whole = _run(splits, checkpoint, tmp_path / "a")
    small = _run(splits, checkpoint, tmp_path / "b", inference__batch_size=4, inference__threshold=-1e9)
    np.testing.assert_allclose([float(r["siamese_score"]) for r in small],
                               [float(r["siamese_score"]) for r in whole], rtol=1e-5, atol=1e-6)
    assert {r["prediction"] for r in small} == {"FAIL"} and small[0]["threshold"] == "-1000000000.0"
    assert "label" in whole[0]  # labelled input keeps its columns


def test_other_ranks_write_nothing_and_bad_model_files_fail(setup, tmp_path: Path, monkeypatch) -> None:
    splits, checkpoint, _ = setup
    (tmp_path / "model.plan.txt").write_text("x")
    with pytest.raises(OIError, match="unknown suffix"):
        _run(splits, tmp_path / "model.plan.txt", tmp_path / "a")
    with pytest.raises(OIError, match="does not exist"):
        _run(splits, tmp_path / "absent.onnx", tmp_path / "b")
    monkeypatch.setenv("RANK", "1")
    config = config_of(train_spec(splits, tmp_path, inference__checkpoint=str(checkpoint)), "inference")
    (tmp_path / "c").mkdir()
    assert inference.run(config, tmp_path / "c", StatusLogger(tmp_path / "c" / "status.json")) == {}
    assert not (tmp_path / "c" / "inference.csv").exists()
