"""Score a whole split with any Scorer: the shared core of evaluate and inference (one code path per backend)."""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

import numpy as np

from ..errors import OIError
from ..deploy.base import MapScorer, Scorer, TypeScorer
from .heatmaps import MapCollector, MapWriter

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig
    from ..config.deploy import EvaluateConfig, InferenceConfig

log = logging.getLogger(__name__)


def model_file(action_cfg: EvaluateConfig | InferenceConfig, action: str) -> str:
    """``<action>.trt_engine``, else ``.onnx_file``, else ``.checkpoint``."""
    for key in ("trt_engine", "onnx_file", "checkpoint"):
        value = getattr(action_cfg, key, None)
        if value:
            return str(value)
    raise OIError(f"set {action}.checkpoint (a .pth), {action}.onnx_file or {action}.trt_engine")


def decision_threshold(config: ExperimentConfig, action_cfg: EvaluateConfig | InferenceConfig,
                       scorer: Scorer) -> tuple[float, str]:
    """(threshold, where it came from): ``<action>.threshold``, ``model.threshold``, then the model file's own."""
    if action_cfg.threshold is not None:
        return float(action_cfg.threshold), "spec (action threshold)"
    if config.model.threshold is not None:
        return float(config.model.threshold), "spec (model.threshold)"
    if scorer.threshold is not None:
        source = scorer.meta.get("threshold_source") if scorer.meta.get("threshold") is not None else None
        return float(scorer.threshold), source or "model default (margin, or logit 0 for Compact)"
    raise OIError("the model file stores no decision threshold; set model.threshold in the spec")


def check_geometry(scorer: Scorer, pre: Any, model_path: str) -> None:
    """The spec's dataset geometry must be the one the model was trained on."""
    stored = scorer.meta.get("dataset") or {}
    problems = []
    if "strip_shape" in stored and list(stored["strip_shape"]) != list(pre.strip_shape):
        problems.append(f"input strip {list(pre.strip_shape)} from the spec vs {list(stored['strip_shape'])} "
                        f"in the model (check dataset.image_width/height, input_map, concat_type)")
    if "lights" in stored and list(stored["lights"]) != list(pre.lights):
        problems.append(f"lights {list(pre.lights)} from dataset.input_map vs {list(stored['lights'])} in the model")
    if problems:
        raise OIError(f"model '{model_path}' does not match the spec: " + "; ".join(problems))
    for key, ours in (("rgb_input_mean", pre.mean), ("rgb_input_std", pre.std)):
        if key in stored and not np.allclose(np.asarray(stored[key]), ours.flatten(), atol=1e-6):
            log.warning("dataset.augmentation_config.%s %s differs from the model's %s; scores may be off",
                        key, ours.flatten().tolist(), stored[key])


def batch_size(action_cfg: EvaluateConfig | InferenceConfig, config: ExperimentConfig, scorer: Scorer) -> int:
    """``<action>.batch_size`` (-1: dataset.batch_size), capped by what the backend accepts."""
    size = int(action_cfg.batch_size)
    if size == 0 or size < -1:
        raise OIError(f"batch_size {size} is invalid; use -1 (dataset.batch_size) or a positive number")
    size = int(config.dataset.batch_size) if size == -1 else size
    return min(size, scorer.max_batch) if scorer.max_batch else size


MapSink = Callable[[np.ndarray, np.ndarray, Any, Any], None]
TypeSink = Callable[[np.ndarray, np.ndarray], None]


def collect_types(kinds: list[str]) -> tuple[TypeSink | None, Callable[[int], np.ndarray | None]]:
    """(an ``on_types`` sink for :func:`score_split`, or None without kinds; a function giving the float32
    [N, K] probabilities it collected, rows in CSV order)."""
    if not kinds:
        return None, lambda n: None
    parts: list[tuple[np.ndarray, np.ndarray]] = []

    def assemble(n: int) -> np.ndarray:
        probs = np.zeros((n, len(kinds)), dtype=np.float32)
        for rows, values in parts:  # one entry per batch
            probs[rows] = values
        return probs

    return lambda rows, values: parts.append((rows, values)), assemble


@contextmanager
def staged_maps(enabled: bool, scorer: Scorer, model_path: str, action: str, folder: Path,
                threshold: float) -> Iterator[MapCollector | None]:
    """The defect-map sink of ``<action>.heatmaps`` (None when off): its files are moved into ``folder`` when
    the block ends, removed when it raises."""
    if not enabled:
        yield None
        return
    check_maps(scorer, model_path, action)
    collector = MapCollector(MapWriter(folder), threshold)
    try:
        yield collector
    except BaseException:
        collector.writer.cancel()
        raise
    collector.artifacts = collector.writer.commit()


def check_maps(scorer: Scorer, model_path: str, action: str) -> None:
    """``<action>.heatmaps`` needs a backend that outputs the defect map."""
    if not getattr(scorer, "supports_maps", False):
        raise OIError(f"{action}.heatmaps: model '{model_path}' gives no defect map; use a Compact checkpoint, or an "
                      f"ONNX file exported with export.heatmaps: true (TensorRT engines give scores only)")


def score_split(scorer: Scorer, config: ExperimentConfig, split: str, batch: int,
                on_maps: MapSink | None = None, on_types: TypeSink | None = None) -> tuple[np.ndarray, Any]:
    """Scores of every row of ``split`` ("test" or "predict") in CSV order, and the split's PairTable.

    ``on_maps(rows, maps, test, golden)``: called per batch with the defect maps (float32 [B, H', W']) and the
    uint8 strips ([B, C, H', W']) when given (the scorer must support maps). ``on_types(rows, probabilities)``:
    called per batch with the defect-kind probabilities (float32 [B, K]; a TypeScorer, kinds = its
    ``defect_types``).

    Each distinct image is decoded once, by threads running ahead in row order; one more thread gathers and
    normalises the next batch while the main thread scores this one (decoding, input preparation and the model
    overlap); a decode error or a size mismatch fails the whole split before any score is returned."""
    from ..data.cache import DecodedSplit
    from ..data.preprocess import Preprocessor
    from ..data.table import split_table

    pre = Preprocessor(config.dataset)
    table = split_table(config.dataset, "test" if split == "test" else "predict")
    decoded = DecodedSplit(table, pre, max_bytes=int(config.dataset.cache_memory_mb) << 20, background=True)
    scores = np.full(len(table), np.nan, dtype=np.float32)
    starts = range(0, len(table), batch)

    def prepare(start: int) -> tuple[np.ndarray, Any, Any, Any, Any]:
        """Rows, uint8 strips (test, golden) and their normalised inputs for the batch at ``start``."""
        rows = np.arange(start, min(start + batch, len(table)))
        test, golden = (pre.concat(side) for side in decoded.arrays(rows))
        return rows, test, golden, pre.normalize(test), pre.normalize(golden)

    torch = sys.modules.get("torch")  # loaded by the torch and TensorRT scorers only: ONNX scoring runs without it
    threads = torch.get_num_threads() if torch is not None else 0
    if torch is not None and not getattr(scorer, "uses_torch_threads", False):
        torch.set_num_threads(1)  # idle pool threads would spin on the cores in use
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oi-batch")
    try:
        upcoming = ahead.submit(prepare, starts[0]) if len(starts) else None
        for k in range(len(starts)):
            rows, test, golden, *inputs = cast(Any, upcoming).result()
            upcoming = ahead.submit(prepare, starts[k + 1]) if k + 1 < len(starts) else None
            if on_maps is not None:
                values, maps = cast(MapScorer, scorer).score_maps(*inputs)
                scores[rows] = np.asarray(values, dtype=np.float32)
                on_maps(rows, np.asarray(maps, dtype=np.float32), test, golden)
            if on_types is not None:  # with maps too: a second pass of this batch (both asked for)
                values, probs = cast(TypeScorer, scorer).score_types(*inputs)
                scores[rows] = np.asarray(values, dtype=np.float32)
                on_types(rows, np.asarray(probs, dtype=np.float32))
            elif on_maps is None:
                scores[rows] = np.asarray(scorer.score(*inputs), dtype=np.float32)
        decoded.finish()
    except BaseException:
        decoded.cancel()
        raise
    finally:
        ahead.shutdown(wait=True, cancel_futures=True)
        if torch is not None:
            torch.set_num_threads(threads)
    missing = np.flatnonzero(np.isnan(scores))
    if missing.size:
        raise OIError(f"{missing.size} row(s) of {table.csv_path} got no score (first: row {int(missing[0])}); "
                      f"the backend returned NaN or skipped them")
    return scores, table
