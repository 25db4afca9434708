"""The cosine schedule ends with the run: after its steps, or when the wall-clock budget is spent."""
from __future__ import annotations

import math

import pytest
import torch

from optical_inspection.models.schedule import budget_cosine


def _lrs(total: int, budget: float | None, seconds_per_step: float, steps: int) -> list[float]:
    now = [0.0]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = budget_cosine(opt, total, budget, clock=lambda: now[0])
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        now[0] += seconds_per_step
        sched.step()
    return out


def test_without_budget_it_is_cosine_over_the_steps() -> None:
    lrs = _lrs(10, None, 1.0, 10)
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)])


def test_budget_shorter_than_the_steps_ends_the_decay_on_time() -> None:
    lrs = _lrs(1000, 10.0, 1.0, 20)  # 1000 steps planned, 10 s budget, 1 s a step
    assert lrs[0] == 1.0 and lrs[5] == pytest.approx(0.5, abs=0.1) and max(lrs[11:]) == 0.0
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
