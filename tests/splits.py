"""Every synthetic split the tests make, in one fixture module: the session-wide 4-light split (a fixture that
conftest.py registers), tiny two-light folders for the model, deploy and runner tests, the AutoML data, and a packed
copy of a split."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from optical_inspection.data.synthetic import make_synthetic_split

LIGHTS = ("LowAngleLight", "WhiteLight")   # model and deploy tests
MODEL_SIZE = 32
DEPLOY_SIZE = 16                           # strips are 3 x 32 x 16
RUNNER_LIGHTS = ("SolderLight", "WhiteLight")


@pytest.fixture(scope="session")
def synthetic_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(csv_path, images_dir) of 24 synthetic 4-light pairs of 32x32 pixels (read-only: copy before editing)."""
    return make_synthetic_split(tmp_path_factory.mktemp("synthetic"), 24, size=32, defect_rate=0.3, seed=0)


def model_splits(root: Path, n_train: int = 48, n_val: int = 24, seed: int = 0) -> dict[str, tuple[Path, Path]]:
    """train / val splits of 2-light 32x32 synthetic pairs (val doubles as test and infer split)."""
    return {
        "train": make_synthetic_split(root / "train", n_train, lights=LIGHTS, size=MODEL_SIZE, defect_rate=0.4,
                                      seed=seed),
        "val": make_synthetic_split(root / "val", n_val, lights=LIGHTS, size=MODEL_SIZE, defect_rate=0.4,
                                    seed=seed + 1),
    }


def deploy_split(folder: Path, n_pairs: int = 40, seed: int = 0) -> tuple[Path, Path]:
    """(csv_path, images_dir) of 2-light 16x16 pairs for the export and backend tests."""
    return make_synthetic_split(folder, n_pairs, lights=LIGHTS, size=DEPLOY_SIZE, seed=seed)


def runner_split(folder: Path, n_pairs: int, seed: int) -> Path:
    """A split folder holding dataset.csv and images/ (two lights, 32 px) for the runner tests."""
    make_synthetic_split(folder, n_pairs, lights=RUNNER_LIGHTS, size=32, seed=seed)
    return folder


def automl_splits(root: Path) -> Path:
    """``root/train`` (24 pairs) and ``root/val`` (12), one light at 32 px: the AutoML end-to-end data."""
    make_synthetic_split(root / "train", 24, lights=(), size=32, seed=1)
    make_synthetic_split(root / "val", 12, lights=(), size=32, seed=2)
    return root


def archive_split(src: Path, dst: Path, arcname: str = "images") -> Path:
    """``dst`` holding src's dataset.csv and its images/ packed as images.tar.gz under ``arcname``."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "dataset.csv").write_bytes((src / "dataset.csv").read_bytes())
    with tarfile.open(dst / "images.tar.gz", "w:gz") as tar:
        tar.add(src / "images", arcname=arcname)
    return dst
