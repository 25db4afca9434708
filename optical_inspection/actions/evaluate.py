"""evaluate: score the test split with any model file; metrics to stdout, metrics.json, status.json and plots."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.preprocess import Preprocessor
from ..deploy import load_scorer
from ..evaluation import plots
from ..data.defect_types import kind_indices
from ..deploy.base import defect_types_of
from ..evaluation.scoring import (batch_size, check_geometry, collect_types, decision_threshold, model_file,
                                  score_split, staged_maps)
from ..errors import DataError
from ..io_utils import write_text_atomic
from ..models.metrics import all_metrics
from ..status import StatusLogger, is_rank_zero
from ..strict_json import dumps

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

WORST_PER_CLASS = 6


def run(config: ExperimentConfig, results_dir: Path, status: StatusLogger) -> dict[str, Any]:
    if not is_rank_zero():  # evaluate runs in one process (TAO forces one GPU too)
        return {}
    action_cfg = config.evaluate
    path = model_file(action_cfg, "evaluate")
    scorer = load_scorer(path, config)
    pre = Preprocessor(config.dataset)
    check_geometry(scorer, pre, path)
    threshold, source = decision_threshold(config, action_cfg, scorer)
    kinds = defect_types_of(scorer)
    on_types, collected = collect_types(kinds)
    with staged_maps(action_cfg.heatmaps, scorer, path, "evaluate", results_dir, threshold) as collector:
        scores, table = score_split(scorer, config, "test", batch_size(action_cfg, config, scorer), collector,
                                    on_types)
        labels = table.labels
        if not (labels >= 0).all():
            raise DataError(f"{table.csv_path}: evaluate needs a label for every row; use inference for unlabelled "
                            f"pairs")
    artifacts: dict[str, str] = dict(collector.artifacts) if collector is not None else {}
    metrics: dict[str, Any] = dict(all_metrics(scores, labels, threshold))
    metrics.update({"threshold_source": source, "model_file": str(path)})
    probs = collected(len(scores))
    if probs is not None:
        metrics.update(type_metrics(probs, kind_indices(table.raw_labels, kinds), kinds))
    print(tao_line(metrics, threshold))
    print(f"AUROC {_fmt(metrics['auroc'])} AP {_fmt(metrics['average_precision'])} Recall@1%FA "
          f"{_fmt(metrics['recall_at_fa_1pct'])} Recall@0.1%FA {_fmt(metrics['recall_at_fa_0_1pct'])} "
          f"(threshold {threshold:.6g} from {source})")
    if "defect_type_accuracy" in metrics:
        print(f"Defect type accuracy {_fmt(metrics['defect_type_accuracy'])} % on {metrics['defect_type_rows']} "
              f"defects of known kind ({', '.join(kinds)})")

    artifacts["metrics"] = str(write_text_atomic(results_dir / "metrics.json", dumps(metrics, indent=2) + "\n"))
    artifacts["roc"] = str(plots.plot_roc(scores, labels, metrics, results_dir / "roc.png"))
    artifacts["score_histogram"] = str(plots.plot_histogram(scores, labels, threshold,
                                                            results_dir / "score_histogram.png"))
    artifacts["confusion_matrix"] = str(plots.plot_confusion(metrics, results_dir / "confusion_matrix.png"))
    rows = plots.worst_rows(scores, labels, WORST_PER_CLASS)
    strips = [(_image(pre, table.test_paths(i)), _image(pre, table.golden_paths(i))) for i in rows]
    maps = [collector.writer.read_grey(i) for i in rows] if collector is not None else None
    artifacts["worst_pairs"] = str(plots.plot_worst_pairs(rows, strips, scores, table.raw_labels, threshold,
                                                          results_dir / "worst_pairs.png", maps))
    kpi = {
        "test_acc": metrics["total_accuracy"], "test_fpr": metrics["false_alarm"],
        "test_fnr": metrics["false_negative"], "defect_acc": metrics["defect_accuracy"],
        "test_auroc": metrics["auroc"], "test_ap": metrics["average_precision"],
        "test_recall_at_fa_1pct": metrics["recall_at_fa_1pct"],
        "test_recall_at_fa_0_1pct": metrics["recall_at_fa_0_1pct"], "threshold": threshold,
    }
    kpi = {k: v for k, v in kpi.items() if math.isfinite(v)}
    status.write("RUNNING", "Test metrics generated.", kpi=kpi)
    return {"artifacts": artifacts, "kpi": kpi}


def type_metrics(probs: np.ndarray, truth: np.ndarray, kinds: list[str]) -> dict[str, Any]:
    """Defect-kind accuracy (%) over the rows whose label is one of ``kinds``, and the recall of each kind."""
    known = truth >= 0
    right = probs.argmax(1) == truth
    out: dict[str, Any] = {"defect_types": kinds, "defect_type_rows": int(known.sum())}
    if known.any():
        out["defect_type_accuracy"] = 100.0 * float(right[known].mean())
        out["defect_type_recall"] = {k: 100.0 * float(right[truth == i].mean()) for i, k in enumerate(kinds)
                                     if (truth == i).any()}
    return out


def tao_line(metrics: dict[str, Any], threshold: float) -> str:
    """TAO's evaluate line, verbatim: its four percentages rounded to 2 d.p. as Python prints them (``100.0``,
    ``69.33``) and the threshold as TAO prints its margin (``2.0``), so scripts that grep TAO's line keep working."""
    return (f"Tot Comp {metrics['num_pairs']} Total Accuracy {round(metrics['total_accuracy'], 2)} "
            f"False Negative {round(metrics['false_negative'], 2)} False Alarm {round(metrics['false_alarm'], 2)} "
            f"Defect Correctly Captured {round(metrics['defect_accuracy'], 2)} for Margin {float(threshold)}")


def _image(pre: Preprocessor, paths: list[Path]) -> np.ndarray:
    """The uint8 strip as the model sees it before normalisation, HWC for plotting."""
    return pre.load_strip(paths).permute(1, 2, 0).numpy()


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4f}"
