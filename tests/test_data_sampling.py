"""fpratio_sampling with TAO's meaning, and clear errors instead of a division by zero."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import RandomSampler, WeightedRandomSampler

from optical_inspection.data.sampling import sampling_weights, train_sampler
from optical_inspection.errors import DataError


def test_weights_follow_tao():
    labels = np.array([0] * 90 + [1] * 10, dtype=np.int8)
    w = sampling_weights(labels, 0.1)
    assert np.allclose(w[:90], 1.0) and np.allclose(w[90:], 90 / 10 * 0.1)


def test_expected_defect_share_is_r_over_1_plus_r():
    labels = np.array([0] * 50 + [1] * 50, dtype=np.int8)  # defect-rich: down-sampled
    sampler = train_sampler(labels, 0.25)
    assert isinstance(sampler, WeightedRandomSampler) and sampler.num_samples == 100
    torch.manual_seed(0)
    drawn = np.concatenate([labels[list(sampler)] for _ in range(100)])
    assert abs(drawn.mean() - 0.25 / 1.25) < 0.02


def test_ratio_zero_is_a_plain_shuffle():
    labels = np.array([0, 1, 0, 1], dtype=np.int8)
    sampler = train_sampler(labels, 0.0)
    assert isinstance(sampler, RandomSampler) and sorted(sampler) == [0, 1, 2, 3]


@pytest.mark.parametrize("labels, pattern", [
    ([0, 0, 0], "has no defect rows .* Add pairs labelled with a defect type"),
    ([1, 1], "has no PASS rows .* Add pairs labelled PASS"),
])
def test_one_class_splits_say_what_to_do(labels, pattern):
    with pytest.raises(DataError, match=pattern):
        train_sampler(np.array(labels, dtype=np.int8), 0.1, "training split x.csv")
