"""How many CPUs this process may use, and the data-loader workers that fit them (no torch import)."""
from __future__ import annotations

import os

AUTO_MIN_BATCHES = 100  # below this many batches an epoch is over before worker processes pay for their start


def resolve_workers(setting: int | str, rows: int, batch_size: int, cpus: int) -> int:
    """Worker processes for ``dataset.workers``: an integer as given (TAO); ``auto``: 0 on 2 CPUs or fewer, where
    workers only take cores from the training step's own threads (issue 13: 0 workers trained ~1.7x faster than
    2 on 2 cores), and for splits of fewer than AUTO_MIN_BATCHES batches; else half the CPUs, at most 8 (the other half
    runs the training step)."""
    if setting != "auto":
        return int(setting)
    if cpus <= 2 or rows < AUTO_MIN_BATCHES * batch_size:
        return 0
    return min(8, cpus // 2)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
