"""Shared helpers of the runner tests (tests/test_runner*.py): tiny synthetic splits and train overrides."""
from __future__ import annotations

import tarfile
from pathlib import Path

from optical_inspection.data.synthetic import make_synthetic_split

REPO = Path(__file__).resolve().parents[1]
LIGHTS = ("SolderLight", "WhiteLight")
TRAIN_OVERRIDES = {
    "epochs": 2, "image_size": 32, "batch_size": 4, "workers": 0, "seed": 0,
    "train.progress_bar": False, "dataset.input_map": {"SolderLight": 0, "WhiteLight": 1},
}


def make_split(folder: Path, n_pairs: int, seed: int) -> Path:
    """A split folder holding dataset.csv and images/ (two lights, 32 px)."""
    make_synthetic_split(folder, n_pairs, lights=LIGHTS, size=32, seed=seed)
    return folder


def archive_split(src: Path, dst: Path, arcname: str = "images") -> Path:
    """``dst`` holding src's dataset.csv and its images/ packed as images.tar.gz under ``arcname``."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "dataset.csv").write_bytes((src / "dataset.csv").read_bytes())
    with tarfile.open(dst / "images.tar.gz", "w:gz") as tar:
        tar.add(src / "images", arcname=arcname)
    return dst
