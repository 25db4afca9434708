"""evaluate: metrics (stdout, metrics.json, status KPIs), plots, threshold precedence, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_helpers import config_of, seeded_checkpoint, train_spec
from optical_inspection.actions import evaluate
from optical_inspection.deploy import load_scorer
from optical_inspection.evaluation.scoring import decision_threshold
from optical_inspection.errors import DataError, OIError
from optical_inspection.models.checkpoint import load_checkpoint
from optical_inspection.models.factory import dataset_geometry
from optical_inspection.models.metrics import auroc
from optical_inspection.status import StatusLogger, read_status
from splits import model_splits

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """Splits and an (untrained, seeded) checkpoint with a stored threshold."""
    root = tmp_path_factory.mktemp("eval")
    splits = model_splits(root, n_train=8, n_val=24)
    return splits, seeded_checkpoint(root / "model.pth", splits, seed=0, threshold=0.0123, threshold_source="test")


def _run(splits: dict, checkpoint: Path, results: Path, **dotted) -> dict:
    config = config_of(train_spec(splits, results.parent, evaluate__checkpoint=str(checkpoint), **dotted), "evaluate")
    results.mkdir(parents=True, exist_ok=True)
    return evaluate.run(config, results, StatusLogger(results / "status.json"))


def test_metrics_files_plots_and_kpis(setup: tuple[dict, Path], tmp_path: Path, capsys) -> None:
    splits, checkpoint = setup
    out = _run(splits, checkpoint, tmp_path / "evaluate")
    printed = capsys.readouterr().out
    assert "Tot Comp 24 Total Accuracy" in printed and "AUROC" in printed
    assert "for Margin 0.0123 " not in printed and "for Margin 0.0123\n" in printed
    metrics = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert metrics["threshold"] == pytest.approx(0.0123) and metrics["threshold_source"] == "test"
    assert metrics["num_pairs"] == 24 and metrics["tp"] + metrics["fp"] + metrics["fn"] + metrics["tn"] == 24

    model, _ = load_checkpoint(checkpoint)
    config = config_of(train_spec(splits, tmp_path))
    from optical_inspection.data.preprocess import Preprocessor
    from optical_inspection.data.table import read_split
    table = read_split(*splits["val"], config.dataset)
    test, golden = Preprocessor(config.dataset).load_pairs(table, range(len(table)))
    with torch.no_grad():
        scores = model.score(test, golden).numpy()
    assert metrics["auroc"] == pytest.approx(auroc(scores, table.labels), abs=1e-6)
    assert metrics["tp"] == int(((scores > 0.0123) & (table.labels == 1)).sum())

    for name in ("roc", "score_histogram", "confusion_matrix", "worst_pairs"):
        path = Path(out["artifacts"][name])
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000
    kpi = read_status(tmp_path / "evaluate" / "status.json")[-1]["kpi"]
    assert {"test_acc", "test_fpr", "test_fnr", "defect_acc", "test_auroc", "test_recall_at_fa_1pct"} <= set(kpi)
    assert kpi["test_acc"] == pytest.approx(metrics["total_accuracy"])


def test_threshold_precedence(setup: tuple[dict, Path], tmp_path: Path) -> None:
    splits, checkpoint = setup
    scorer = load_scorer(checkpoint)

    def chosen(**dotted) -> tuple[float, str]:
        config = config_of(train_spec(splits, tmp_path, **dotted))
        return decision_threshold(config, config.evaluate, scorer)

    assert chosen() == (0.0123, "test")
    assert chosen(model__threshold=5.0) == (5.0, "spec (model.threshold)")
    assert chosen(model__threshold=5.0, evaluate__threshold=-5.0) == (-5.0, "spec (action threshold)")


def test_unlabelled_split_wrong_geometry_and_missing_model_fail(setup: tuple[dict, Path], tmp_path: Path) -> None:
    splits, checkpoint = setup
    csv_path, images = splits["val"]
    unlabelled = tmp_path / "nolabel.csv"
    rows = [line.split(",") for line in csv_path.read_text().splitlines()]
    col = rows[0].index("label")
    unlabelled.write_text("\n".join(",".join(r[:col] + r[col + 1:]) for r in rows) + "\n")
    with pytest.raises(DataError):
        _run(splits, checkpoint, tmp_path / "x", dataset__test_dataset__csv_path=str(unlabelled))
    with pytest.raises(OIError, match="does not match the spec: input strip"):
        _run(splits, checkpoint, tmp_path / "y", dataset__image_width=16)
    with pytest.raises(OIError, match="does not exist"):
        _run(splits, tmp_path / "missing.pth", tmp_path / "z")
    assert not (tmp_path / "y" / "metrics.json").exists()


def test_tao_layout_checkpoint_prints_taos_line_at_a_fixed_threshold(setup: tuple[dict, Path], tmp_path: Path,
                                                                      capsys) -> None:
    """A TAO-trained Siamese_3 file (Lightning dict, ``model.`` keys, no metadata of ours) at evaluate.threshold."""
    from optical_inspection.models.siamese import Siamese3

    splits, _ = setup
    spec = {"model__model_type": "Siamese_3"}
    config = config_of(train_spec(splits, tmp_path, **spec))
    torch.manual_seed(0)
    network = Siamese3(tuple(dataset_geometry(config.dataset)["strip_shape"]))
    path = tmp_path / "tao_model.pth"
    torch.save({"epoch": 4, "global_step": 10, "optimizer_states": [], "lr_schedulers": [],
                "state_dict": {f"model.{k}": v for k, v in network.state_dict().items()}}, path)

    from optical_inspection.data.preprocess import Preprocessor
    from optical_inspection.data.table import read_split
    table = read_split(*splits["val"], config.dataset)
    test, golden = Preprocessor(config.dataset).load_pairs(table, range(len(table)))
    with torch.no_grad():
        network.eval()
        scores = network.score(test, golden).numpy()
    threshold = float(np.median(scores))
    pred, y = scores > threshold, table.labels
    n_pass, n_fail = int((y == 0).sum()), int((y == 1).sum())
    assert n_pass and n_fail
    acc = 100 * ((pred & (y == 1)).sum() + (~pred & (y == 0)).sum()) / len(y)
    fn = 100 * (~pred & (y == 1)).sum() / n_fail
    fa = 100 * (pred & (y == 0)).sum() / n_pass
    expected = (f"Tot Comp {len(y)} Total Accuracy {round(float(acc), 2)} False Negative {round(float(fn), 2)} "
                f"False Alarm {round(float(fa), 2)} Defect Correctly Captured {round(100 - float(fn), 2)} "
                f"for Margin {threshold}")

    capsys.readouterr()
    _run(splits, path, tmp_path / "evaluate", evaluate__threshold=threshold, **spec)
    lines = capsys.readouterr().out.splitlines()
    assert expected in lines
    metrics = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert metrics["false_negative"] == pytest.approx(100 - metrics["defect_accuracy"])

    _run(splits, path, tmp_path / "all_pass", evaluate__threshold=1e9, **spec)   # nothing above the margin
    lines = capsys.readouterr().out.splitlines()
    assert (f"Tot Comp {len(y)} Total Accuracy {round(100 * n_pass / len(y), 2)} False Negative 100.0 "
            f"False Alarm 0.0 Defect Correctly Captured 0.0 for Margin 1000000000.0") in lines
