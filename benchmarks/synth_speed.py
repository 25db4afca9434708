"""Pairs/s of the procedural pair generator (optical_inspection.data.synth), per style and tile size.

    python benchmarks/synth_speed.py [--pairs 512]

Prints wall-clock and per-CPU-second rates (numpy single-threaded work; on a loaded machine the CPU figure is
the steadier one).
"""
from __future__ import annotations

import argparse
import time

from optical_inspection.data.synth import generate_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=512)
    args = parser.parse_args()
    print(f"{'style':<8}{'lights':>7}{'size':>6}{'pairs/s':>10}{'pairs/CPU-s':>13}")
    for style, lights in (("binary", 1), ("grey", 1), ("rgb", 4)):
        for size in (64, 128):
            wall, cpu = time.perf_counter(), time.process_time()
            generate_pairs(args.pairs, size=size, style=style, n_lights=lights, seed=0)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{style:<8}{lights:>7}{size:>6}{args.pairs / wall:>10.0f}{args.pairs / cpu:>13.0f}")


if __name__ == "__main__":
    main()
