"""Training-step time with 1 and 2 (or N) OpenMP threads, interleaved, on this machine.

Run it twice to see what ``OMP_WAIT_POLICY`` does on a shared machine::

    OMP_WAIT_POLICY=ACTIVE  .venv/bin/python benchmarks/bench_threads.py
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_threads.py

(``n2n-core`` sets PASSIVE unless the variable is already set.)
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch

from n2n_core.bench import EngineTrainer


def main(crop: int = 32, rounds: int = 6, steps: int = 5) -> int:
    eng = EngineTrainer(4, crop, torch.device("cpu"))
    counts = sorted({1, os.cpu_count() or 1})
    res: dict[int, list[float]] = {n: [] for n in counts}
    eng.step()
    for _ in range(rounds):
        for n in counts:
            torch.set_num_threads(n)
            t0 = time.perf_counter()
            for _ in range(steps):
                eng.step()
            res[n].append((time.perf_counter() - t0) / steps)
    policy = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    for n, v in res.items():
        ms = statistics.median(v) * 1000
        print(f"OMP_WAIT_POLICY={policy} threads={n}: {ms:.1f} ms/step (batch 4, crop {crop})")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 32))
