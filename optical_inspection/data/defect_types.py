"""Defect kinds from a split's ``label`` column: every value other than PASS names a kind (DeepPCB: open, short,
mousebite, spur, copper, pin-hole; any strings elsewhere). Torch-free."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .table import PASS

MIN_KINDS = 2  # one kind (TAO's plain FAIL) has nothing to tell apart


def defect_types(raw_labels: Sequence[str]) -> list[str]:
    """The sorted distinct defect kinds (labels stripped; PASS in any case excluded), or [] under MIN_KINDS."""
    kinds = sorted({v.strip() for v in raw_labels if v.strip() and v.strip().upper() != PASS})
    return kinds if len(kinds) >= MIN_KINDS else []


def kind_indices(raw_labels: Sequence[str], types: Sequence[str]) -> np.ndarray:
    """int64 [N]: each row's index in ``types``, -1 for PASS, blank and kinds not in ``types``."""
    if not len(raw_labels):
        return np.zeros(0, dtype=np.int64)
    values, inverse = np.unique(np.array([v.strip() for v in raw_labels], dtype=str), return_inverse=True)
    position = {t: i for i, t in enumerate(types)}
    lookup = np.array([position.get(str(v), -1) for v in values], dtype=np.int64)  # one entry per distinct label
    return lookup[inverse.reshape(-1)]
