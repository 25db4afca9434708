"""Cosine learning-rate decay that ends when the run ends: after ``total_steps`` steps or, when a wall-clock
budget is set (``train.max_time_minutes``), when the budget is spent, whichever comes first; so a 1-minute and a
10-minute run both finish at a small learning rate instead of being cut off at a large one."""
from __future__ import annotations

import math
import time
from typing import Callable

import torch


def budget_cosine(optimizer: torch.optim.Optimizer, total_steps: int, budget_seconds: float | None,
                  clock: Callable[[], float] = time.monotonic) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with factor ``0.5 * (1 + cos(pi * progress))``, progress = max(step / total_steps, elapsed /
    budget) capped at 1; the clock starts when the schedule is made (when fitting starts, after decoding)."""
    start: list[float] = []

    def factor(step: int) -> float:
        progress = step / max(total_steps, 1)
        if budget_seconds:
            if not start:
                start.append(clock())
            progress = max(progress, (clock() - start[0]) / budget_seconds)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
