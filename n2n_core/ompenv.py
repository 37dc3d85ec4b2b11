"""How OpenMP's idle threads wait: decided once per process, before torch loads libgomp.

Between two parallel regions (every convolution of a step) libgomp's worker
threads either spin for a while or sleep on a futex. On a 2-core machine with
the cores to itself, sleeping costs a wake-up per region: a batch-2 training step
at crop 64 took 54 ms with sleeping waiters and 38 ms with a short spin (1.4x;
crop 96: 1.3x). With another busy process on the same cores, spinning burns the
time slice the partner thread is waiting for: libgomp's default spin made a
2-thread step 9x slower, a short spin 1.1x (benchmarks/bench_threads.py, its
numbers in benchmarks/RESULTS.md). So: a short spin when the CPUs are quiet as
the command starts, sleeping waiters when they are already busy, and whatever
the user set wins. Children (torchrun ranks, sweep slots) inherit the choice.

The CPUs' use is sampled for 0.1 s, not read from the load average: that lags by
minutes, and a run started right after another (a sweep, ``make demo`` after
``make setup``) would find the machine "busy" with work that has ended.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# Spin iterations before a waiting thread sleeps; 3,000 kept the quiet-machine gain
# (1.43x vs sleeping; 10,000: 1.45x) at the least cost on shared cores (0.89x; 10,000: 0.66x).
SPIN_COUNT = "3000"
USER_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
BUSY_FRACTION = 0.5  # of all CPUs in use by others: from here on, waiters sleep
SAMPLE_S = 0.1


def omp_wait_env(environ: Mapping[str, str], busy: float | None) -> dict[str, str]:
    """The variables to add to ``environ``: none if the user set either, else spin or sleep.

    ``busy`` is the fraction of the machine's CPU time in use (0..1; None when it
    cannot be read, which counts as busy: sleeping waiters are never the bad case).
    """
    if any(k in environ for k in USER_KEYS):
        return {}
    if busy is None or busy >= BUSY_FRACTION:
        return {"OMP_WAIT_POLICY": "PASSIVE"}
    return {"GOMP_SPINCOUNT": SPIN_COUNT}


def cpu_busy() -> float | None:
    """The fraction of all CPUs busy over the next 0.1 s, or None."""
    try:
        import psutil

        return psutil.cpu_percent(interval=SAMPLE_S) / 100.0
    except Exception:  # no /proc, a sandbox: not knowing is an answer too
        return None


def cpu_cores() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def apply() -> dict[str, str]:
    """Decide for this process and its children; nothing once torch is loaded (too late to matter)."""
    if "torch" in sys.modules or any(k in os.environ for k in USER_KEYS):
        return {}
    add = omp_wait_env(os.environ, cpu_busy())
    os.environ.update(add)
    return add


def describe(environ: Mapping[str, str] = os.environ) -> str:
    """How this process's OpenMP threads wait, for the run's log."""
    policy = environ.get("OMP_WAIT_POLICY")
    if policy and policy.upper() == "PASSIVE":
        return "waiters sleep (OMP_WAIT_POLICY=PASSIVE)"
    if policy:
        return f"OMP_WAIT_POLICY={policy}"
    if environ.get("GOMP_SPINCOUNT"):
        return f"waiters spin (GOMP_SPINCOUNT={environ['GOMP_SPINCOUNT']})"
    return "libgomp's default wait"
