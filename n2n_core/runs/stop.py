"""Stopping a run from outside it: the one home for the TUI's stop and sweep cancel.

Nothing is signalled unless :mod:`n2n_core.process.identity` proves it is this run's: the
launcher (SIGTERM to its process group; it forwards the stop to every rank,
which ends with a snapshot), then SIGKILL after the grace period -- the ranks
die with their launcher (:mod:`lifeline`), and recorded ranks that are still
alive and provably this run's are killed directly. Each escalation re-verifies
first: a pid may be reused while we wait.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from n2n_core.errors import UserError
from n2n_core.process.identity import Verdict, live_ranks, verify_launcher
from n2n_core.runs.info import RunInfo, read_run_info
from n2n_core.runs.query import read_run_preset
from n2n_core.runs.summary import run_state

STOP_GRACE_S = 20.0
# However slow its steps, a run that has not stopped within this is killed.
STOP_GRACE_MAX_S = 900.0
# Ranks whose preset cannot be read are assumed to log this seldom (the reproduction
# presets' value, above the default): an unknown errs toward waiting, not killing.
UNKNOWN_LOG_EVERY = 100
# After SIGKILL the kernel takes the ranks down with their launcher within this.
REAP_WAIT_S = 10.0


@dataclass(frozen=True)
class StopResult:
    outcome: str  # stopped | killed | not running | refused
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.outcome}: {self.reason}" if self.reason else self.outcome


def _launcher(run_dir: Path) -> tuple[Verdict, list | None]:
    """The launcher's verdict and the recorded rank claims, as run.json says now."""
    info = read_run_info(run_dir) or RunInfo()
    return verify_launcher(run_dir, info.process), info.ranks


def _signal_group(v: Verdict, sig: int) -> None:
    if v.ident is None or v.ident.pgid <= 1:  # verify() never lets this through
        raise UserError(f"refusing to signal process group {v.ident and v.ident.pgid}")
    os.killpg(v.ident.pgid, sig)


def signal_run(run_dir: str | Path, sig: int) -> str:
    """Send ``sig`` to the run's launcher group, or to its orphan ranks when the launcher is
    gone; returns whom (``group`` / ``ranks``). Raises :class:`UserError` saying why not."""
    run_dir = Path(run_dir)
    v, ranks = _launcher(run_dir)
    if v.ours:
        _signal_group(v, sig)
        return "group"
    live = live_ranks(run_dir, ranks)
    if v.state == "gone" and live:
        for r in live:
            os.kill(r.ident.pid, sig)
        return "ranks"
    raise UserError(f"{run_dir}: not signalled: {v.reason}")


def _anything_alive(run_dir: Path) -> bool:
    v, ranks = _launcher(run_dir)
    return v.ours or bool(live_ranks(run_dir, ranks))


def stop_grace(run_dir: str | Path) -> float:
    """Seconds a run gets after SIGTERM to stop by itself (with a snapshot) before SIGKILL.

    It acts on the stop after the step under way when it is one process, at its next
    log step (``train.log_every``) when several ranks must agree, then writes a
    snapshot: at a paper-size crop in fp32 on a CPU a step takes seconds, so a fixed
    grace would kill a run that was stopping as asked and lose every step since its
    last snapshot. The base grace plus those steps at the run's measured rate (twice,
    for a slower step than the last measured), capped at ``STOP_GRACE_MAX_S``."""
    run_dir = Path(run_dir)
    ms = run_state(run_dir).values.ms_per_step
    if not ms or not math.isfinite(ms) or ms <= 0:
        return STOP_GRACE_S
    info = read_run_info(run_dir) or RunInfo()
    steps = 1
    if (info.world_size or 1) > 1:
        train = read_run_preset(run_dir).get("train")
        log_every = train.get("log_every") if isinstance(train, dict) else None
        ok = isinstance(log_every, int) and not isinstance(log_every, bool) and log_every > 0
        steps = log_every if ok else UNKNOWN_LOG_EVERY
    return min(STOP_GRACE_MAX_S, STOP_GRACE_S + 2.0 * (steps + 1) * ms / 1000.0)


def stop_run(
    run_dir: str | Path, grace: float | None = None, poll: float = 0.2, sleep=time.sleep
) -> StopResult:
    """SIGTERM the run; SIGKILL whatever of it is left after ``grace`` seconds
    (:func:`stop_grace` when not given).

    Blocking: call it from a worker thread.
    """
    run_dir = Path(run_dir)
    v, ranks = _launcher(run_dir)
    live = live_ranks(run_dir, ranks)
    if not v.ours and not (v.state == "gone" and live):
        if v.state == "gone":
            return StopResult("not running", v.reason)
        return StopResult("refused", v.reason)
    try:
        signal_run(run_dir, signal.SIGTERM)
    except ProcessLookupError:
        return StopResult("stopped")
    if grace is None:  # after the SIGTERM: reading the records must not delay the stop
        grace = stop_grace(run_dir)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _anything_alive(run_dir):
            return StopResult("stopped")
        sleep(poll)
    killed = False
    v, ranks = _launcher(run_dir)
    if v.ours:
        try:
            _signal_group(v, signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            pass
    for r in live_ranks(run_dir, ranks):
        try:
            os.kill(r.ident.pid, signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + REAP_WAIT_S
    while _anything_alive(run_dir) and time.monotonic() < deadline:
        sleep(poll)
    if _anything_alive(run_dir):
        return StopResult("refused", "still alive after SIGKILL")
    return StopResult("killed" if killed else "stopped")
