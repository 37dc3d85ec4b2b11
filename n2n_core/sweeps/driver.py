"""What both sweep backends share: the scheduler's log, the one loop that starts
pending points and follows running ones until the sweep is done, stopped or
cancelled, and how a sweep ends.

A backend (:class:`~n2n_core.sweeps.local.LocalBackend`,
:class:`~n2n_core.sweeps.slurm.SlurmBackend`) knows how to start, follow and
stop points; it never imports the other backend. The driver holds the sweep's
scheduler lock, turns SIGINT/SIGTERM/SIGHUP or a ``cancel.request`` file into
a stop, and records the end in ``sweep.json``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from n2n_core.errors import EXIT_STOPPED, printable
from n2n_core.files.safe import open_append
from n2n_core.process.signals import SCHEDULER_SIGNALS, StopFlag
from n2n_core.sweeps.store import (
    CANCEL_FILE,
    LOG_FILE,
    SchedulerLock,
    Sweep,
    final_status,
    write_sweep,
)


class Backend(Protocol):
    """How one kind of executor runs a sweep's points (``poll_s``: seconds between rounds)."""

    executor: str
    poll_s: float
    # A search's step after a point's training finished (an evaluation): the
    # ``n2n-core`` arguments to run in the same slot or job, or None.
    then: Callable[[Any], list[str] | None] | None

    def prepare(self) -> dict[str, Any]:
        """Bring the points up to date (reattach what still runs); the scheduler's own
        fields for ``sweep.json`` (slots, cluster)."""

    def announce(self) -> None:
        """Log what the scheduler is about to do, once it is recorded in ``sweep.json``."""

    def poll(self) -> None:
        """Notice points that ended and record how."""

    def start_pending(self) -> None:
        """Start pending points while there is room."""

    def stop(self) -> None:
        """Stop every point this scheduler runs (called each round until none is left)."""

    def busy(self) -> bool:
        """Whether any point is still followed by this scheduler."""

    def room(self) -> int:
        """How many more points could start now (free slots, jobs below the limit)."""

    def prune(self, index: int) -> None:
        """Stop a running point that its search's pruner rejected (as :meth:`stop` does)."""


class SweepLog:
    """``scheduler.log``: one timestamped line per event, echoed to the console if asked."""

    def __init__(self, sweep_dir: Path, echo: bool):
        self._f = open_append(Path(sweep_dir) / LOG_FILE, "the scheduler log")
        self.echo = echo

    def __call__(self, msg: str) -> None:
        # Params, run names and job states come from sweep.json: escaped, never acted on
        # by the terminal that echoes or later shows the log.
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {printable(msg)}"
        self._f.write(line + "\n")
        self._f.flush()
        if self.echo:
            print(line, flush=True)

    def close(self) -> None:
        self._f.close()


def run_sweep(
    sweep_dir: Path, sweep: Sweep, echo: bool, backend_for: Callable[[SweepLog], Backend]
) -> int:
    """Hold the scheduler lock and drive the sweep to its end; the CLI's exit status."""
    lock = SchedulerLock(sweep_dir).acquire()
    log = SweepLog(sweep_dir, echo)
    try:
        backend = backend_for(log)
        own = backend.prepare()
        search = None
        if sweep.search is not None:
            from n2n_core.sweeps.search import Search

            search = Search(sweep_dir, sweep, log)
            search.prepare()
            backend.then = search.after_training
        sweep.status, sweep.message, sweep.ended = "running", "", None
        sweep.scheduler = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "executor": backend.executor,
            **own,
        }
        write_sweep(sweep_dir, sweep)
        backend.announce()
        why = drive(sweep_dir, sweep, backend, log, search)
        return finish(sweep_dir, sweep, why, log)
    finally:
        log.close()
        lock.release()


def drive(sweep_dir: Path, sweep: Sweep, backend: Backend, log: SweepLog, search=None) -> str:
    """Schedule until done; why it ended: ``done``, ``stopped`` or ``cancelled``.

    A search (:class:`~n2n_core.sweeps.search.Search`) makes its points on demand: each
    round it reports the running points' validations (and prunes), and asks the study
    for as many new points as there is room for, until it has asked for all its trials."""
    why: str | None = None
    flag = StopFlag(SCHEDULER_SIGNALS, on_second_sigint=None).install()
    try:
        while True:
            if (sweep_dir / CANCEL_FILE).exists() and why != "cancelled":
                why = "cancelled"
                log("cancel requested")
            if flag.requested and why is None:
                why = "stopped"
            backend.poll()
            if search is not None:
                search.observe(backend)
            if why:
                backend.stop()
            else:
                if search is not None:
                    waiting = sum(p.status == "pending" for p in sweep.points)
                    search.fill(backend.room() - waiting)
                backend.start_pending()
            pending = any(p.status == "pending" for p in sweep.points)
            pending = pending or (search is not None and not why and search.more())
            if not backend.busy() and (why or not pending):
                break
            time.sleep(backend.poll_s)
    finally:
        flag.uninstall()
        try:
            (sweep_dir / CANCEL_FILE).unlink()
        except OSError:
            pass
    if search is not None:
        search.observe(None)  # the points that ended while stopping
    if why == "cancelled":
        for p in sweep.points:
            if p.status == "pending":
                p.status = "cancelled"
    write_sweep(sweep_dir, sweep)
    return why or "done"


def finish(sweep_dir: Path, sweep: Sweep, why: str, log) -> int:
    """Record how the sweep ended; the exit status: 0 finished, 1 failed, 130 stopped/cancelled."""
    status, message = final_status(sweep, why)
    sweep.status, sweep.message, sweep.ended = status, message, time.time()
    write_sweep(sweep_dir, sweep)
    log(f"sweep {status}: {message}")
    return {"finished": 0, "failed": 1}.get(status, EXIT_STOPPED)
