"""Helpers of the sweep-safety tests: real sweep folders (queued points, nothing trained),
sweep.json edited by hand, and a live process that owns a run folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from n2n_core.sweeps.plan import plan_sweep
from n2n_core.sweeps.store import create_sweep

# A process that is a run's launcher as far as anyone can prove: it holds the run
# folder's lock and records its identity in run.json, then waits to be signalled.
LIVE_RUN = """
import sys, time
from n2n_core.process.identity import launch_identity
from n2n_core.process.locks import FolderLock
from n2n_core.runs.info import update_run_info
lock = FolderLock().acquire(sys.argv[1])
if sys.argv[2] == "record":
    update_run_info(sys.argv[1], status="running", started=time.time(), **launch_identity())
print("ready", flush=True)
time.sleep(600)
"""
# A sweep's scheduler as far as its lock can tell.
LIVE_SCHEDULER = """
import sys, time
from n2n_core.sweeps.store import SchedulerLock
lock = SchedulerLock(sys.argv[1]).acquire()
print("ready", flush=True)
time.sleep(600)
"""


def make_sweep(preset: Path, results: Path, name: str = "s", grid=("train.lr=1e-3",)) -> Path:
    """A sweep as `n2n-core sweep --detach` leaves it before its scheduler starts."""
    plan = plan_sweep(preset, list(grid), [], 1)
    return create_sweep(plan, results, name, "local", None, None, ["n2n-core", "sweep"])


def edit_sweep(sweep_dir: Path, change: Callable[[dict], None]) -> None:
    data = json.loads((sweep_dir / "sweep.json").read_text())
    change(data)
    (sweep_dir / "sweep.json").write_text(json.dumps(data))


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (what "left untouched" compares)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


class LiveRun:
    """A live process that owns ``run_dir`` (its lock, and with ``record`` its identity in
    run.json as ``running``), in a session of its own; or, with ``script``
    LIVE_SCHEDULER, one that schedules the sweep ``run_dir``."""

    def __init__(self, run_dir: Path, record: bool = True, script: str = LIVE_RUN):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, str(run_dir), "record" if record else "lock"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(cond: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {cond}")
        time.sleep(0.05)
