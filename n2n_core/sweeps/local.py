"""The local sweep scheduler: at most ``slots`` points at once, each on its own devices.

On CUDA/NPU a slot is ``runtime.nproc`` devices, handed to the point through
``CUDA_VISIBLE_DEVICES`` / ``ASCEND_RT_VISIBLE_DEVICES``, so 8 devices run 8 1p
points or one 8p point. On the CPU there is one slot by default and the cores
are divided between slots (``OMP_NUM_THREADS``). :func:`plan_slots` decides
that and nothing else (pure, tested on fake devices).

Each point is ``n2n-core resume RUN_DIR`` (a queued run starts at step 0, an
interrupted one continues from its snapshot) in its own session; the scheduler
holds its Popen, so the only processes it ever signals are its own children.
The children get SIGTERM when the scheduler dies (Linux ``PR_SET_PDEATHSIG``):
a SIGKILLed scheduler leaves stopped points with snapshots, which ``sweep
resume`` continues. One scheduler per sweep: an ``fcntl.flock`` on
``scheduler.lock`` is held for the scheduler's life (``sweep.SchedulerLock``) and dropped by the kernel
on any exit, so a second scheduler refuses and no stale lock survives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from n2n_core.errors import EXIT_STOPPED, UserError
from n2n_core.files.safe import open_append, own_folder
from n2n_core.process.lifeline import dies_with
from n2n_core.process.locks import Lock
from n2n_core.runs.info import read_run_info
from n2n_core.sweeps.driver import SweepLog, finish, run_sweep
from n2n_core.sweeps.plan import params_text
from n2n_core.sweeps.store import (
    ENDED,
    POINTS_DIR,
    Point,
    SchedulerLock,
    Sweep,
    point_dir,
    point_log,
    points_folder,
    run_status,
    write_sweep,
)

VISIBLE_ENV = {"cuda": "CUDA_VISIBLE_DEVICES", "npu": "ASCEND_RT_VISIBLE_DEVICES"}
DEVICES_DIR = ".devices"
STOP_GRACE_S = 60.0


# ---------------------------------------------------------------------------
# slots and devices (pure)


@dataclass(frozen=True)
class Slot:
    index: int
    kind: str  # cuda | npu | cpu | mps
    devices: tuple[str, ...] = ()  # accelerator ids as the scheduler sees them; () on CPU
    threads: int | None = None  # CPU threads per process

    def env(self) -> dict[str, str]:
        """What a point started in this slot gets in its environment."""
        if self.kind in VISIBLE_ENV:
            return {VISIBLE_ENV[self.kind]: ",".join(self.devices)}
        if self.threads:
            return {"OMP_NUM_THREADS": str(self.threads)}
        return {}

    def describe(self) -> str:
        if self.devices:
            return f"{self.kind}:{','.join(self.devices)}"
        return f"{self.kind}" + (f" ({self.threads} threads)" if self.threads else "")


def parse_devices(text: str | None) -> list[str] | None:
    """``--devices 0,1,2,3`` -> ``["0", "1", "2", "3"]`` (``None`` when not given)."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UserError(f"--devices {text!r}: expected a comma-separated list, e.g. 0,1,2,3")
    if len(set(items)) != len(items):
        raise UserError(f"--devices {text!r}: a device is listed twice")
    return items


def plan_slots(
    kind: str,
    available: list[str],
    nproc: int,
    slots: int | None = None,
    requested: list[str] | None = None,
    cores: int = 1,
) -> list[Slot]:
    """Split the devices into slots of ``nproc`` devices (accelerators) or the cores (CPU)."""
    if slots is not None and slots < 1:
        raise UserError(f"--slots {slots}: must be >= 1")
    if kind in VISIBLE_ENV:
        devices = available
        if requested is not None:
            absent = [d for d in requested if d not in available]
            if absent:
                have = ",".join(available) or "none"
                raise UserError(
                    f"--devices: {','.join(absent)}: no such {kind} device here (present: {have})"
                )
            devices = requested
        if nproc > len(devices):
            raise UserError(
                f"runtime.nproc: {nproc} processes need {nproc} {kind} devices; "
                f"{len(devices)} available"
            )
        fit = len(devices) // nproc
        n = fit if slots is None else slots
        if n > fit:
            raise UserError(
                f"--slots {n}: more slots than devices ({len(devices)} {kind} devices hold "
                f"{fit} point(s) of runtime.nproc {nproc})"
            )
        return [Slot(i, kind, tuple(devices[i * nproc : (i + 1) * nproc])) for i in range(n)]
    if requested is not None:
        raise UserError(f"--devices: the {kind} has no device list; use --slots to run in parallel")
    n = 1 if slots is None else slots
    if n * nproc > cores:
        raise UserError(
            f"--slots {n}: more slots than CPU cores ({cores} cores, {nproc} process(es) a point)"
        )
    threads = max(1, cores // (n * nproc)) if kind == "cpu" else None
    return [Slot(i, kind, (), threads) for i in range(n)]


def devices_folder(sweeps_dir: Path) -> Path:
    """``RESULTS/sweeps/.devices``, shared by every scheduler there: a real folder (a
    symlink planted there is refused, never followed to put our locks elsewhere)."""
    return own_folder(Path(sweeps_dir) / DEVICES_DIR, "the device locks folder", create=True)


class DeviceClaim:
    """Locks on a slot's devices, shared by every scheduler of one results dir.

    Two sweeps (or a queued run, which is a one-point sweep) on the same machine
    never train on the same device at once: a point starts only when its
    scheduler holds ``RESULTS/sweeps/.devices/<kind><id>.lock`` for each of its
    devices (on the CPU, one lock per slot). ``fcntl.flock``: the kernel drops
    them when the scheduler exits, SIGKILL included.
    """

    def __init__(self, sweeps_dir: Path, slot: Slot):
        names = [f"{slot.kind}{d}" for d in slot.devices] or [f"{slot.kind}-slot{slot.index}"]
        self.sweeps_dir = Path(sweeps_dir)
        self.paths = [self.sweeps_dir / DEVICES_DIR / f"{n}.lock" for n in names]
        self._locks: list[Lock] = []

    def acquire(self) -> bool:
        """True when every lock is ours; False when another scheduler holds one.

        A lock path that is a symlink or not a regular file (planted in a shared
        results dir) is refused, never followed or created through; so is a
        ``.devices`` folder that is a symlink.
        """
        devices_folder(self.sweeps_dir)
        for path in self.paths:
            lock = Lock(path, "device")
            try:
                taken = lock.try_acquire()
            except BaseException:
                self.release()
                raise
            if not taken:
                self.release()
                return False
            self._locks.append(lock)
        return True

    def release(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks = []


def detect_devices(kind: str) -> tuple[str, list[str]]:
    """The concrete device kind and the accelerator ids this process may hand out."""
    if kind == "auto":
        from n2n_core.engine.device import resolve_device

        kind = resolve_device("auto").type
    if kind not in VISIBLE_ENV:
        return kind, []
    # Ids are what the children will see: our own visible list, if we were given one.
    inherited = os.environ.get(VISIBLE_ENV[kind])
    if inherited:
        return kind, [d.strip() for d in inherited.split(",") if d.strip()]
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    else:
        from n2n_core.engine.device import _npu_available

        count = torch.npu.device_count() if _npu_available() else 0
    return kind, [str(i) for i in range(count)]


# ---------------------------------------------------------------------------
# the scheduler


def point_command(run_dir: Path) -> list[str]:
    # After `--`: a path is never read as an option, whatever it starts with.
    return [sys.executable, "-m", "n2n_core.cli", "resume", "--", str(run_dir)]


def point_outcome(sweep_dir: Path, point: Point, exit_code: int | None) -> str:
    """A point's status once its process has ended, from what its run folder says."""
    status = run_status(sweep_dir, point)
    if status in ("finished", "failed", "stopped"):
        return status
    return "stopped" if exit_code == EXIT_STOPPED else "failed"


def reconcile(sweep_dir: Path, sweep: Sweep) -> list[Point]:
    """Bring points up to date with their run folders after a scheduler ended.

    Returns the points whose run is still alive (to be waited for); every other
    unfinished point becomes ``pending`` (a queued run starts, an interrupted
    one resumes from its snapshot). Finished and failed points stay as they are.
    """
    alive = []
    for p in sweep.points:
        if p.status in ENDED:
            continue
        status = run_status(sweep_dir, p)
        if status in ("finished", "failed"):
            p.status = status
        elif status == "running":
            p.status = "running"
            alive.append(p)
        else:
            p.status = "pending"
    return alive


class LocalBackend:
    """Runs a sweep's pending points in slots on this machine, each an ``n2n-core resume``
    child in a session of its own that dies with this scheduler."""

    executor = "local"

    def __init__(
        self, sweep_dir: Path, sweep: Sweep, slots: list[Slot], log: SweepLog, poll: float = 0.5
    ):
        self.sweep_dir = Path(sweep_dir)
        self.sweep = sweep
        self.slots = list(slots)
        self.free = list(slots)
        self.log = log
        self.poll_s = poll
        self.children: dict[int, tuple[subprocess.Popen, Slot, DeviceClaim]] = {}
        self._waiting_logged = False
        self.adopted: dict[int, Slot | None] = {}
        self._stop_sent: float | None = None
        self._adopted_lines: list[str] = []
        self.then = None  # see driver.Backend.then
        self.evaluating: set[int] = set()

    def save(self) -> None:
        write_sweep(self.sweep_dir, self.sweep)

    def prepare(self) -> dict:
        # The folders of ours this scheduler writes into, checked before sweep.json says
        # it runs (a link planted there is one error line, not a sweep that stops halfway).
        points_folder(self.sweep_dir)
        devices_folder(self.sweep_dir.parent)
        for p in reconcile(self.sweep_dir, self.sweep):
            self.adopted[p.index] = self._take_slot(p.devices)
            self._adopted_lines.append(
                f"point {p.index}: run {p.run} is still running; waiting for it"
            )
        return {"slots": [s.describe() for s in self.slots]}

    def announce(self) -> None:
        todo = sum(p.status in ("pending", "running") for p in self.sweep.points)
        if self.sweep.search is not None:
            cfg = self.sweep.search
            self.log(
                f"scheduler started: {cfg['sampler']} search of {cfg['trials']} trials "
                f"({len(self.sweep.points)} asked, {todo} to run), {len(self.slots)} slot(s)"
            )
            for line in self._adopted_lines:
                self.log(line)
            return
        self.log(
            f"scheduler started: {todo} of {len(self.sweep.points)} points to run, "
            f"{len(self.slots)} slot(s)"
        )
        for line in self._adopted_lines:
            self.log(line)

    def busy(self) -> bool:
        return bool(self.children or self.adopted)

    def room(self) -> int:
        return len(self.free)

    def prune(self, index: int) -> None:
        if index in self.children:
            self._stop_point(index, self.children[index][0])
            return
        from n2n_core.runs.stop import signal_run

        try:  # adopted from an earlier scheduler: its verified identity or nothing
            signal_run(point_dir(self.sweep_dir, self.sweep.points[index]), signal.SIGTERM)
        except (UserError, ProcessLookupError) as e:
            self.log(f"point {index}: not stopped ({e})")

    def _take_slot(self, devices: list[str] | None) -> Slot | None:
        for slot in self.free:
            if devices is None or list(slot.devices) == list(devices):
                self.free.remove(slot)
                return slot
        return self.free.pop(0) if self.free else None

    def _claim_slot(self) -> tuple[Slot, DeviceClaim] | None:
        """A free slot whose devices no other scheduler holds right now."""
        for slot in self.free:
            claim = DeviceClaim(self.sweep_dir.parent, slot)
            if claim.acquire():
                self.free.remove(slot)
                self._waiting_logged = False
                return slot, claim
        if self.free and not self._waiting_logged:
            self.log("waiting: another sweep or queued run holds the devices")
            self._waiting_logged = True
        return None

    def start_pending(self) -> None:
        for p in self.sweep.points:
            if not self.free:
                return
            if p.status != "pending":
                continue
            claimed = self._claim_slot()
            if claimed is None:
                return
            slot, claim = claimed
            run_dir = point_dir(self.sweep_dir, p)
            proc = self._spawn(p, slot, point_command(run_dir))
            self.children[p.index] = (proc, slot, claim)
            p.status, p.devices, p.started, p.ended, p.exit_code = (
                "running",
                list(slot.devices) or None,
                time.time(),
                None,
                None,
            )
            self.save()
            self.log(
                f"point {p.index} ({params_text(p.params)}) started: run {p.run} on {slot.describe()}"
            )

    def _spawn(self, p: Point, slot: Slot, command: list[str]) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **slot.env()}
        with open_append(point_log(self.sweep_dir, p), "the point's log", binary=True) as out:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=dies_with(os.getpid(), signal.SIGTERM),
                env=env,
            )

    def _then(self, index: int, slot: Slot, claim: DeviceClaim, code: int) -> bool:
        """Start what follows a point's finished training in its slot (a search's
        evaluation); True when started (the point runs on)."""
        p = self.sweep.points[index]
        if index in self.evaluating:
            self.evaluating.discard(index)
            if code != 0:
                self.log(f"point {index}: evaluation failed (exit {code}); see {POINTS_DIR}/")
            return False
        if self.then is None or self._stop_sent is not None:
            return False
        if point_outcome(self.sweep_dir, p, code) != "finished":
            return False
        args = self.then(p)
        if not args:
            return False
        proc = self._spawn(p, slot, [sys.executable, "-m", "n2n_core.cli", *args])
        self.children[index] = (proc, slot, claim)
        self.evaluating.add(index)
        self.log(f"point {index}: trained; {' '.join(args[:3])}")
        return True

    def poll(self) -> None:
        for index, (proc, slot, claim) in list(self.children.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.children[index]
            evaluated = index in self.evaluating
            if self._then(index, slot, claim, code):
                continue
            claim.release()
            self.free.append(slot)
            self.free.sort(key=lambda s: s.index)
            p = self.sweep.points[index]
            p.status = point_outcome(self.sweep_dir, p, 0 if evaluated else code)
            p.ended, p.exit_code = time.time(), 0 if evaluated else code
            self.save()
            self.log(f"point {index}: {p.status} (exit {code}), run {p.run}")
        for index, slot in list(self.adopted.items()):
            p = self.sweep.points[index]
            info = read_run_info(point_dir(self.sweep_dir, p))
            if run_status(self.sweep_dir, p) == "running":
                continue
            del self.adopted[index]
            if slot is not None:
                self.free.append(slot)
                self.free.sort(key=lambda s: s.index)
            p.status = point_outcome(self.sweep_dir, p, info.exit_code if info else None)
            if p.status == "stopped":
                p.status = "pending"  # stopped outside our control: continue it
            p.ended = time.time()
            self.save()
            self.log(f"point {index}: run {p.run} ended {p.status}")

    def stop(self) -> None:
        now = time.monotonic()
        if self._stop_sent is None:
            self._stop_sent = now
            for index, (proc, _, _) in self.children.items():
                self.log(f"point {index}: stopping (SIGTERM)")
                self._stop_point(index, proc)
            for index in self.adopted:
                self.log(f"point {index}: not started by this scheduler; left running")
            self.adopted.clear()
        elif now - self._stop_sent > STOP_GRACE_S:
            for index, (proc, _, _) in self.children.items():
                self.log(f"point {index}: still running after {STOP_GRACE_S:.0f}s; SIGKILL")
                _signal_child(proc, signal.SIGKILL)
            self._stop_sent = now

    def _stop_point(self, index: int, proc: subprocess.Popen) -> None:
        """SIGTERM through the run's verified identity (runs.stop); a point that has not yet
        recorded who it is gets it through the Popen we hold."""
        from n2n_core.runs.stop import signal_run

        try:
            signal_run(point_dir(self.sweep_dir, self.sweep.points[index]), signal.SIGTERM)
        except UserError:
            _signal_child(proc, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _signal_child(proc: subprocess.Popen, sig: int) -> None:
    """Signal a child we started (its own session, so its group id is its pid) and its ranks.

    We hold the Popen and have not reaped it, so its pid cannot have been reused.
    """
    if proc.poll() is not None or proc.pid <= 1:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def run_local(sweep_dir: Path, sweep: Sweep, slots: list[Slot], echo: bool) -> int:
    """Hold the lock and schedule the sweep to its end here; returns the CLI's exit status."""
    return run_sweep(sweep_dir, sweep, echo, lambda log: LocalBackend(sweep_dir, sweep, slots, log))


def cancel_without_scheduler(sweep_dir: Path, sweep: Sweep, log) -> list[str]:
    """Cancel a sweep whose scheduler is gone: pending points are cancelled; points whose
    runs are still alive are stopped through their verified identity (runs.stop)."""
    from n2n_core.runs.stop import stop_run

    lock = SchedulerLock(sweep_dir).acquire()
    notes = []
    try:
        for p in reconcile(sweep_dir, sweep):
            result = stop_run(point_dir(sweep_dir, p))
            notes.append(f"point {p.index}: run {p.run} {result}")
            p.status = "stopped" if result.outcome in ("stopped", "killed") else p.status
        for p in sweep.points:
            if p.status == "pending":
                p.status = "cancelled"
        for n in notes:
            log(n)
        finish(sweep_dir, sweep, "cancelled", log)
    finally:
        lock.release()
    return notes
