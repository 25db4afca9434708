"""Training sampler: TAO's ``fpratio_sampling`` (defects drawn with weight (n_pass / n_fail) * ratio)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from torch.utils.data import RandomSampler, Sampler, WeightedRandomSampler

from ..errors import DataError

log = logging.getLogger(__name__)


def class_counts(labels: np.ndarray) -> tuple[int, int]:
    """(n_pass, n_fail) of an int8 label array (1 defect, 0 pass)."""
    n_fail = int((labels == 1).sum())
    return int((labels == 0).sum()), n_fail


def sampling_weights(labels: np.ndarray, fpratio: float, where: str = "training split", synthetic: bool = False
                     ) -> np.ndarray:
    """Per-row weights: PASS 1, defect (n_pass / n_fail) * fpratio, so the expected defect share is r / (1 + r).

    A split without passes cannot be trained on, nor one without defects unless ``synthetic`` defects are painted
    on its PASS pairs: DataError saying what to do.
    """
    n_pass, n_fail = class_counts(labels)
    if n_fail == 0 and not synthetic:
        raise DataError(f"{where} has no defect rows (every label is PASS): a comparison model cannot learn what a "
                        f"defect looks like. Add pairs labelled with a defect type (anything but PASS), or set "
                        f"dataset.synthetic_defects.enable: true with a rate above 0.")
    if n_pass == 0:
        raise DataError(f"{where} has no PASS rows (every label is a defect): the model cannot learn what a good "
                        f"pair looks like. Add pairs labelled PASS.")
    if n_fail == 0:
        log.info("No labelled defects (%d pass rows): training on synthetic defects only", n_pass)
        return np.ones(len(labels))
    weight = n_pass / n_fail * fpratio
    log.info("Sampling defective components at %.3f:1 rate (%d pass, %d defect rows)", weight, n_pass, n_fail)
    return np.where(labels == 1, weight, 1.0)


def train_sampler(labels: np.ndarray, fpratio: float, where: str = "training split", synthetic: bool = False
                  ) -> Sampler:
    """WeightedRandomSampler (with replacement, one epoch = len rows) or, with ``fpratio == 0`` or no labelled
    defects, a plain shuffle."""
    weights = sampling_weights(labels, fpratio, where, synthetic)
    if fpratio == 0 or not (labels == 1).any():
        return RandomSampler(range(len(labels)))
    # a double tensor, not a list: the sampler takes either (its annotation names only Sequence[float])
    return WeightedRandomSampler(cast(Sequence[float], torch.as_tensor(weights, dtype=torch.double)),
                                 num_samples=len(labels), replacement=True)
