"""inference: score the infer split with any model file into inference.csv (input rows + score + decision)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.preprocess import Preprocessor
from ..deploy import load_scorer
from ..deploy.base import defect_types_of
from ..evaluation.scoring import (batch_size, check_geometry, collect_types, decision_threshold, model_file,
                                  score_split, staged_maps)
from ..io_utils import write_text_atomic
from ..status import StatusLogger, is_rank_zero

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

ADDED_COLUMNS = ("siamese_score", "prediction", "threshold")
MAP_COLUMNS = ("defect_map", "peak_x", "peak_y", "defect_area")  # only with inference.heatmaps
TYPE_COLUMNS = ("defect_type", "defect_type_probability")  # only for models with a type head; blank on PASS rows


def run(config: ExperimentConfig, results_dir: Path, status: StatusLogger) -> dict[str, Any]:
    if not is_rank_zero():  # one process scores every row, so rows keep their CSV order
        return {}
    action_cfg = config.inference
    path = model_file(action_cfg, "inference")
    scorer = load_scorer(path, config)
    check_geometry(scorer, Preprocessor(config.dataset), path)
    threshold, source = decision_threshold(config, action_cfg, scorer)
    kinds = defect_types_of(scorer)
    with staged_maps(action_cfg.heatmaps, scorer, path, "inference", results_dir, threshold) as collector:
        on_types, collected = collect_types(kinds)
        scores, table = score_split(scorer, config, "predict", batch_size(action_cfg, config, scorer), collector,
                                    on_types)
        failed = scores > threshold
        probs = collected(len(scores))
        extra = dict(collector.columns(len(scores))) if collector is not None else {}
        if probs is not None:
            extra.update(type_columns(probs, kinds, failed))
        text = inference_csv(table.fieldnames, table.rows, scores, failed, threshold, extra)
    artifacts: dict[str, str] = dict(collector.artifacts) if collector is not None else {}
    out = write_text_atomic(results_dir / "inference.csv", text)
    n_fail = int(failed.sum())
    print(f"Scored {len(scores)} pairs: {n_fail} FAIL, {len(scores) - n_fail} PASS at threshold {threshold:.6g} "
          f"({source}); wrote {out}")
    return {"artifacts": {"inference_csv": str(out), **artifacts},
            "kpi": {"num_pairs": len(scores), "num_fail": n_fail, "threshold": threshold}}


def type_columns(probs: np.ndarray, kinds: list[str], failed: np.ndarray) -> dict[str, np.ndarray]:
    """TYPE_COLUMNS of each row: its most probable kind and that probability, blank where the row is PASS."""
    best = probs.argmax(1)
    names = np.where(failed, np.asarray(kinds, dtype=object)[best], "")
    values = np.where(failed, np.char.mod("%.6g", probs[np.arange(len(best)), best]), "")
    return {"defect_type": names, "defect_type_probability": values}


def inference_csv(fieldnames: list[str], rows: list[dict[str, str]], scores: np.ndarray, failed: np.ndarray,
                  threshold: float, extra: dict[str, Any] | None = None) -> str:
    """The input rows in their order, plus siamese_score, prediction (PASS/FAIL) and threshold columns, then the
    MAP_COLUMNS and TYPE_COLUMNS that ``extra`` holds."""
    extra = extra or {}
    more = tuple(c for c in MAP_COLUMNS + TYPE_COLUMNS if c in extra)
    added = ADDED_COLUMNS + more
    columns = [c for c in fieldnames if c not in added]
    cells = [[row.get(c, "") for row in rows] for c in columns]  # column by column: no per-row dicts built
    cells.append(list(map(repr, np.asarray(scores, dtype=np.float64).tolist())))
    cells.append(np.where(failed, "FAIL", "PASS").tolist())
    cells.append([repr(float(threshold))] * len(rows))
    cells.extend([str(v) for v in np.asarray(extra[name]).tolist()] for name in more)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns + list(added))
    writer.writerows(zip(*cells))
    return buffer.getvalue()
