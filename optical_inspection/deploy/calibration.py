"""INT8 calibration data: real test/golden pairs from split folders, preprocessed exactly as in training.

TAO feeds the calibrator single images with detector preprocessing and one device pointer for a two-input
network, so its INT8 engines are meaningless for OI. Here every batch holds both inputs (``input_1`` = test
strips, ``input_2`` = golden strips) of real pairs read through the shared Preprocessor.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..data.archives import prepare_images_dir
from ..data.preprocess import Preprocessor
from ..data.table import PairTable, read_split
from ..errors import OIError
from .metadata import INPUT_NAMES

if TYPE_CHECKING:
    from ..config.dataset import DatasetConfig

CSV_NAME = "dataset.csv"


class CalibrationPairs:
    """``batches`` batches of ``batch_size`` pairs spread evenly over all rows of the folders' dataset.csv files.

    Spread, not the first rows: a converted split lists the crops of one board after another, so its first rows
    cover a few boards and few defects; ranges calibrated on them clip the differences of other boards (DeepPCB,
    64 calibration pairs: fp32/int8 correlation 0.982 from the first rows).
    """

    def __init__(self, folders: list[str], dataset_cfg: DatasetConfig, batch_size: int, batches: int) -> None:
        if not folders:
            raise OIError("INT8 needs calibration pairs: set gen_trt_engine.tensorrt.calibration.cal_image_dir to "
                          "one or more split folders (each with dataset.csv and its images), or give an existing "
                          "cal_cache_file")
        self.batch_size = batch_size
        self.batches = batches
        self.preprocessor = Preprocessor(dataset_cfg)
        self.tables = [_read_folder(Path(f), dataset_cfg) for f in folders]
        available = sum(len(t) for t in self.tables)
        needed = batch_size * batches
        if available < needed:
            raise OIError(f"calibration needs cal_batch_size x cal_batches = {batch_size} x {batches} = {needed} "
                          f"pairs but {folders} hold {available}; add pairs or lower cal_batches/cal_batch_size")
        rows = [(k, i) for k, t in enumerate(self.tables) for i in range(len(t))]
        self._rows = [rows[j] for j in np.arange(needed) * available // needed]  # strictly increasing, no repeats

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for b in range(self.batches):
            chunk = self._rows[b * self.batch_size:(b + 1) * self.batch_size]
            yield self._load(chunk)

    def _load(self, chunk: list[tuple[int, int]]) -> dict[str, np.ndarray]:
        """Rows (table number, row) → one batch; rows of one table are loaded together."""
        tests, goldens = [], []
        for k in dict.fromkeys(k for k, _ in chunk):
            test, golden = self.preprocessor.load_pairs(self.tables[k], [i for t, i in chunk if t == k])
            tests.append(test)
            goldens.append(golden)
        return {
            INPUT_NAMES[0]: np.ascontiguousarray(np.concatenate([t.numpy() for t in tests]), dtype=np.float32),
            INPUT_NAMES[1]: np.ascontiguousarray(np.concatenate([g.numpy() for g in goldens]), dtype=np.float32),
        }


def _read_folder(folder: Path, dataset_cfg: DatasetConfig) -> PairTable:
    if not folder.is_dir():
        raise OIError(f"calibration folder '{folder}' (gen_trt_engine.tensorrt.calibration.cal_image_dir) does not "
                      f"exist; give split folders that hold {CSV_NAME} and the images")
    csv_path = folder / CSV_NAME
    if not csv_path.is_file():
        raise OIError(f"calibration folder '{folder}' has no {CSV_NAME}; each cal_image_dir entry must be a split "
                      f"folder (dataset.csv + images/)")
    return read_split(csv_path, prepare_images_dir(folder, csv_path), dataset_cfg, require_label=False)


def ort_reader(pairs: CalibrationPairs) -> Any:
    """An ONNX Runtime ``CalibrationDataReader`` over the pairs (for QDQ quantisation)."""
    from onnxruntime.quantization import CalibrationDataReader

    class PairReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(pairs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

        def __len__(self) -> int:
            return len(pairs)

    return PairReader()


def trt10_calibrator(trt: Any, pairs: CalibrationPairs | None, cache_file: Path | None) -> Any:
    """A TensorRT 10 entropy calibrator that binds *both* inputs of every batch (device memory via torch).

    With ``pairs`` None, the calibrator relies on ``cache_file`` alone (TensorRT reads the cache first).
    """
    import torch

    from ..io_utils import atomic_path

    class PairCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(pairs) if pairs is not None else iter(())
            self._device: dict[str, torch.Tensor] = {}

        def get_batch_size(self) -> int:
            return pairs.batch_size if pairs is not None else 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            missing = [n for n in names if n not in batch]
            if missing:
                raise OIError(f"the network asks calibration data for {missing}; OI networks take {INPUT_NAMES}")
            self._device = {n: torch.from_numpy(batch[n]).cuda() for n in names}
            return [int(self._device[n].data_ptr()) for n in names]

        def read_calibration_cache(self) -> bytes | None:
            if cache_file is not None and cache_file.is_file():
                return cache_file.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_file is None:
                return
            with atomic_path(cache_file) as tmp:
                tmp.write_bytes(bytes(cache))

    return PairCalibrator()
