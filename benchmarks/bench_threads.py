"""How OpenMP's waiting threads change a CPU training step: alone, and with two runs sharing the cores.

Each setting runs in its own child process (libgomp reads its environment once,
when torch loads it), interleaved round by round, and the step is the engine's
own (:class:`n2n_core.bench.measure.EngineTrainer`, bf16 where native, as the presets
run). Prints ms/step and each setting's ratio to ``OMP_WAIT_POLICY=PASSIVE``::

    .venv/bin/python benchmarks/bench_threads.py            # batch 2, crop 64
    .venv/bin/python benchmarks/bench_threads.py 2 96       # the photo preset's step

"alone" is one run with every core; "shared" is two such runs at once on the
same cores (two runs started by hand, or a run beside a test suite). What
``n2n-core`` picks is :func:`n2n_core.process.ompenv.omp_wait_env`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin 1000": {"GOMP_SPINCOUNT": "1000"},
    "spin 3000": {"GOMP_SPINCOUNT": "3000"},
    "spin 10000": {"GOMP_SPINCOUNT": "10000"},
    "libgomp default": {},
}
# Spinning without bound on shared cores is ~10x slower (RESULTS.md): a few steps show it.
SHARED_SKIP = {"libgomp default"}


def child(batch: int, crop: int, steps: int) -> None:
    import torch

    from n2n_core.bench.measure import EngineTrainer, _bf16_ok

    device = torch.device("cpu")
    eng = EngineTrainer(batch, crop, device, "bf16" if _bf16_ok(device) else "fp32")
    for _ in range(5):
        eng.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        eng.step()
    float(eng.loss_sum)
    print(f"{(time.perf_counter() - t0) * 1000 / steps:.2f}")


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return {**env, **extra}


def _spawn(extra: dict, batch: int, crop: int, steps: int) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--child", str(batch), str(crop), str(steps)]
    return subprocess.Popen(cmd, env=_env(extra), stdout=subprocess.PIPE, text=True)


def _ms(procs: list[subprocess.Popen]) -> list[float]:
    return [float(p.communicate()[0].strip()) for p in procs]


def main(batch: int = 2, crop: int = 64, rounds: int = 3, steps: int = 60) -> int:
    alone: dict[str, list[float]] = {k: [] for k in SETTINGS}
    shared: dict[str, list[float]] = {k: [] for k in SETTINGS if k not in SHARED_SKIP}
    for r in range(rounds):
        for name, extra in SETTINGS.items():
            alone[name] += _ms([_spawn(extra, batch, crop, steps)])
        if r == 0:  # shared runs are slow; one round of them
            for name in shared:
                extra = SETTINGS[name]
                shared[name] += _ms([_spawn(extra, batch, crop, steps // 4) for _ in range(2)])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"batch {batch}, crop {crop}, {cores} cores; median ms/step (ratio to PASSIVE: >1 is faster)"
    )
    base_a = statistics.median(alone["PASSIVE"])
    base_s = statistics.median(shared["PASSIVE"])
    for name in SETTINGS:
        a = statistics.median(alone[name])
        line = f"  {name:16s} alone {a:7.1f} ({base_a / a:4.2f}x)"
        if name in shared:
            s = statistics.median(shared[name])
            line += f"   shared {s:7.1f} ({base_s / s:4.2f}x)"
        print(line)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*(int(a) for a in sys.argv[2:5]))
        sys.exit(0)
    sys.exit(main(*(int(a) for a in sys.argv[1:3])))
