"""The bundled pretrained weights of the default network (Compact, base_channels 16, shift_tolerance 1), trained
on synthetic pairs only by ``python -m optical_inspection.models.pretrain`` (``make pretrained``).

The keyword ``pretrained`` stands for them wherever a checkpoint is asked for (``train.pretrained_model_path``,
``evaluate.checkpoint``, ``inference.checkpoint``, ``export.checkpoint``). The file's sha256 is recorded beside
it; a file that does not match is refused. Compact is fully convolutional with global pooling and its encoder
runs over the whole strip, so the same weights take any tile size and any number of lights (tiles stacked as a
taller image); pretraining mixes binary, grey and colour tiles, one and two lights, so the first layer serves
grey and RGB alike. Torch-free: the runner may import it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import OIError

KEYWORD = "pretrained"
FOLDER = Path(__file__).resolve().parent / "pretrained"
WEIGHTS = FOLDER / "compact_synthetic.pth"
DIGEST = FOLDER / "compact_synthetic.pth.sha256"
# the model settings the bundled weights fit
MODEL = {"model_type": "Compact", "base_channels": 16, "shift_tolerance": 1}


def is_keyword(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower() == KEYWORD


def fits(model: dict) -> bool:
    """Whether a model section (model_settings) is the network the bundled weights belong to."""
    return all(model.get(k) == v for k, v in MODEL.items())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundled_path() -> Path:
    """The bundled weights file, after checking it against its recorded sha256 (OIError otherwise)."""
    if not WEIGHTS.is_file() or not DIGEST.is_file():
        raise OIError(f"the bundled pretrained weights are missing ({WEIGHTS}); reinstall optical_inspection or "
                      f"rebuild them with `make pretrained`")
    expected = DIGEST.read_text(encoding="utf-8").split()[0].strip().lower()
    actual = sha256(WEIGHTS)
    if actual != expected:
        raise OIError(f"the bundled pretrained weights {WEIGHTS} do not match their recorded sha256 ({actual} vs "
                      f"{expected} in {DIGEST.name}): the file was changed or damaged, so it is refused. Reinstall "
                      f"optical_inspection or rebuild them with `make pretrained`")
    return WEIGHTS


def resolve(value: str | Path) -> Path:
    """A checkpoint path, with the keyword ``pretrained`` replaced by the (checked) bundled weights."""
    return bundled_path() if is_keyword(value) else Path(value)
