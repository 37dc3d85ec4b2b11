"""How OpenMP's idle threads wait: decided once per process, before torch loads libgomp.

Between two parallel regions (every convolution of a step) libgomp's worker
threads either spin for a while or sleep on a futex. On a 2-core machine with
the cores to itself, sleeping costs a wake-up per region: a batch-2 training step
at crop 64 took 54 ms with sleeping waiters and 38 ms with a short spin (1.4x;
crop 96: 1.3x). With another busy process on the same cores, spinning burns the
time slice the partner thread is waiting for: libgomp's default spin made a
2-thread step 9x slower, a short spin 1.1x (benchmarks/bench_threads.py, its
numbers in benchmarks/RESULTS.md). So: a short spin when the cores this process
may use are quiet as the command starts, sleeping waiters when something else
computes on them, and whatever the user set wins. Children (torchrun ranks,
sweep slots) inherit the choice; a Slurm job decides again on its node.

The cores' use is sampled for 0.1 s, not read from the load average: that lags by
minutes, and a run started right after another (a sweep, ``make demo`` after
``make setup``) would find the machine "busy" with work that has ended. Only
Linux builds of torch use libgomp; elsewhere waiters sleep, as before.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

# Spin iterations before a waiting thread sleeps; 3,000 kept the quiet-machine gain
# (1.43x vs sleeping; 10,000: 1.45x) at the least cost on shared cores (0.89x; 10,000: 0.66x).
SPIN_COUNT = "3000"
USER_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
# Set beside our own choice, so that a job on another machine (Slurm) can tell it
# from the user's and decide for its own cores.
DECIDED_KEY = "N2N_OMP_DECIDED"
SAMPLE_S = 0.1


def quiet_limit(cores: int) -> float:
    """Busy cores below which ours count as quiet: under half a core, plus a 16th of them
    for the daemons a large node always runs."""
    return 0.5 + cores / 16


def omp_wait_env(
    environ: Mapping[str, str], busy_cores: float | None, cores: int, platform: str = "linux"
) -> dict[str, str]:
    """The variables to add to ``environ``: none if the user set either, else spin or sleep.

    ``busy_cores`` is how many of our ``cores`` others kept busy (None when it
    cannot be read, which counts as busy: sleeping waiters are never the bad case).
    """
    if any(k in environ for k in USER_KEYS):
        return {}
    quiet = busy_cores is not None and busy_cores < quiet_limit(cores)
    if quiet and platform == "linux":
        return {"GOMP_SPINCOUNT": SPIN_COUNT, DECIDED_KEY: "1"}
    return {"OMP_WAIT_POLICY": "PASSIVE", DECIDED_KEY: "1"}


def _my_cpus() -> list[int] | None:
    """The CPU numbers this process may run on (a container or taskset may allow fewer)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_cores() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    cpus = _my_cpus()
    return len(cpus) if cpus else (os.cpu_count() or 1)


def busy_cores() -> float | None:
    """How many of the cores this process may use were busy over the next 0.1 s, or None."""
    try:
        import psutil

        before = psutil.cpu_times(percpu=True)
        time.sleep(SAMPLE_S)
        after = psutil.cpu_times(percpu=True)
        mine = _my_cpus() or list(range(len(after)))
        busy = 0.0
        for i in mine:
            if i >= min(len(before), len(after)):
                return None
            total = sum(after[i]) - sum(before[i])
            idle = (after[i].idle - before[i].idle) + (
                getattr(after[i], "iowait", 0.0) - getattr(before[i], "iowait", 0.0)
            )
            if total <= 0:  # a frozen or synthetic /proc/stat: unknown, not quiet
                return None
            busy += min(max(1.0 - idle / total, 0.0), 1.0)
        return busy
    except Exception:  # no /proc, a sandbox: not knowing is an answer too
        return None


def apply() -> dict[str, str]:
    """Decide for this process and its children; nothing once torch is loaded (too late to matter)."""
    if "torch" in sys.modules or any(k in os.environ for k in USER_KEYS):
        return {}
    add = omp_wait_env(os.environ, busy_cores(), cpu_cores(), sys.platform)
    os.environ.update(add)
    return add


def undecided(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without our own choice (the user's stays): for a process on another machine."""
    if DECIDED_KEY not in environ:
        return dict(environ)
    drop = {*USER_KEYS, DECIDED_KEY}
    return {k: v for k, v in environ.items() if k not in drop}


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
