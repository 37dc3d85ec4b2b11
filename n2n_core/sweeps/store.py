"""``sweep.json``: what a sweep is and how far it got, its folder, lock and view.

A sweep lives in ``RESULTS/sweeps/NNNNN-name/``::

    sweep.json      base preset, grid, points (params, status, run folder, devices, job)
    scheduler.log   what the scheduler did, one timestamped line per event
    points/         each point's console output (its run folder keeps log.txt as usual)

A sweep without a grid is one point: a run queued until its devices are free
(see :class:`n2n_core.sweeps.local.DeviceClaim`). Every point is an ordinary run
folder in ``RESULTS`` (status ``queued`` until it starts) whose ``run.json`` names
its ``sweep`` and ``params``, so everything that reads runs works unchanged.

Planning the points is :mod:`~n2n_core.sweeps.plan`; running them is
:mod:`~n2n_core.sweeps.driver` with the ``local`` or ``slurm`` backend.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from n2n_core.errors import UserError
from n2n_core.files.atomic import atomic_write_text
from n2n_core.files.checks import read_bounded
from n2n_core.process.locks import FolderLock, is_held
from n2n_core.runs.folders import allocate_run_dir, list_run_dirs, prepare_run
from n2n_core.runs.info import effective_status, read_run_info
from n2n_core.sweeps.plan import SweepPlan

SWEEP_FILE = "sweep.json"
LOG_FILE = "scheduler.log"
LOCK_FILE = "scheduler.lock"
CANCEL_FILE = "cancel.request"
SWEEPS_DIR = "sweeps"
FORMAT = "n2n-sweep/1"
# sweep.json of MAX_POINTS points is a few MB; anything far bigger is not ours.
MAX_SWEEP_BYTES = 64 << 20

PointStatus = Literal["pending", "running", "finished", "failed", "stopped", "cancelled"]
SweepStatus = Literal["pending", "running", "finished", "failed", "stopped", "cancelled"]
DONE = ("finished", "failed")


# ---------------------------------------------------------------------------
# the grid


# ---------------------------------------------------------------------------
# sweep.json


@dataclass
class Point:
    index: int
    params: dict[str, Any]
    run: str  # the run folder's name, inside the sweep's results dir
    status: PointStatus = "pending"
    devices: list[str] | None = None
    job_id: str | None = None
    job_state: str | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None

    # Keys this version does not know (written by a newer one): kept on rewrite.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        return {**self.extra, **copy.deepcopy(d)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Point:
        names = set(cls.__dataclass_fields__) - {"extra"}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**{k: v for k, v in d.items() if k in names}, extra=extra)


@dataclass
class Sweep:
    """What ``sweep.json`` holds; written only through :func:`write_sweep` (atomically)."""

    name: str
    preset: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    sets: list[str]
    seeds: int
    executor: str
    slots: int | None
    devices: list[str] | None
    points: list[Point]
    status: SweepStatus = "pending"
    message: str = ""
    created: float = field(default_factory=time.time)
    ended: float | None = None
    scheduler: dict[str, Any] | None = None
    format: str = FORMAT

    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # unknown keys, kept

    def to_json(self) -> dict[str, Any]:
        d = {
            k: [p.to_json() for p in self.points] if k == "points" else copy.deepcopy(v)
            for k, v in ((k, getattr(self, k)) for k in self.__dataclass_fields__)
            if k != "extra"
        }
        return {**self.extra, **d}

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str) -> Sweep:
        try:
            names = set(cls.__dataclass_fields__) - {"extra"}
            kw = {k: v for k, v in d.items() if k in names}
            kw["points"] = [Point.from_json(p) for p in d.get("points", [])]
            return cls(**kw, extra={k: v for k, v in d.items() if k not in names})
        except (TypeError, AttributeError) as e:
            raise UserError(f"{source}: not a sweep file ({e})") from None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out


def results_dir_of(sweep_dir: Path) -> Path:
    """``RESULTS/sweeps/NNNNN-name`` -> ``RESULTS`` (where its points' run folders are)."""
    return Path(sweep_dir).parent.parent


def point_dir(sweep_dir: Path, point: Point) -> Path:
    return results_dir_of(sweep_dir) / point.run


def point_log(sweep_dir: Path, point: Point) -> Path:
    return Path(sweep_dir) / "points" / f"{point.run}.log"


def write_sweep(sweep_dir: Path, sweep: Sweep) -> None:
    atomic_write_text(Path(sweep_dir) / SWEEP_FILE, json.dumps(sweep.to_json(), indent=2) + "\n")


def read_sweep(sweep_dir: str | Path) -> Sweep:
    path = Path(sweep_dir) / SWEEP_FILE
    if not Path(sweep_dir).is_dir():
        raise UserError(f"{sweep_dir}: sweep folder not found")
    if not os.path.lexists(path):
        raise UserError(f"{path}: missing; not a sweep folder")
    # A FIFO or device planted there is refused before any open (which would block).
    raw = read_bounded(path, "sweep file", "a sweep.json file", MAX_SWEEP_BYTES)
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise UserError(f"{path}: unreadable sweep file (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable sweep file ({e.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a sweep file (format is not {FORMAT})")
    return Sweep.from_json(data, str(path))


def list_sweep_dirs(results_dir: str | Path) -> list[Path]:
    return [p for p in list_run_dirs(Path(results_dir) / SWEEPS_DIR) if (p / SWEEP_FILE).exists()]


def create_sweep(
    plan: SweepPlan,
    results_dir: str | Path,
    name: str,
    executor: str,
    slots: int | None,
    devices: list[str] | None,
    argv: list[str],
) -> Path:
    """Write the sweep folder and every point's run folder (queued); returns the sweep folder."""
    results = Path(results_dir)
    sweep_dir = allocate_run_dir(results / SWEEPS_DIR, name)
    (sweep_dir / "points").mkdir()
    sweep_ref = f"{SWEEPS_DIR}/{sweep_dir.name}"
    points = []
    width = len(str(max(len(plan.presets) - 1, 0)))
    single = len(plan.presets) == 1 and not plan.grid  # a queued run: named as the sweep
    for i, (params, preset) in enumerate(zip(plan.params or [{}], plan.presets, strict=True)):
        run_dir = prepare_run(
            preset,
            results,
            name if single else f"{name}-p{i:0{width}d}",
            argv,
            queued=True,
            sweep=sweep_ref,
            params=params,
        )
        points.append(Point(index=i, params=params, run=run_dir.name))
    sweep = Sweep(
        name=name,
        preset=plan.preset_path,
        base=plan.base,
        grid=plan.grid,
        sets=plan.sets,
        seeds=plan.seeds,
        executor=executor,
        slots=slots,
        devices=devices,
        points=points,
    )
    write_sweep(sweep_dir, sweep)
    return sweep_dir


# ---------------------------------------------------------------------------
# the lock


class SchedulerLock:
    """One scheduler per sweep: the one folder lock (:class:`~n2n_core.process.locks.FolderLock`)
    on ``SWEEP_DIR/scheduler.lock``, held from :meth:`acquire` until :meth:`release` or exit."""

    def __init__(self, sweep_dir: Path):
        self.sweep_dir = Path(sweep_dir)
        self._lock = FolderLock("sweep", name=LOCK_FILE)

    def acquire(self) -> SchedulerLock:
        if scheduler_alive(self.sweep_dir):
            raise UserError(f"{self.sweep_dir}: a scheduler is already running this sweep")
        self._lock.acquire(self.sweep_dir)
        return self

    def release(self) -> None:
        self._lock.release()


def scheduler_alive(sweep_dir: Path) -> bool:
    """Whether some process holds the sweep's scheduler lock right now."""
    return is_held(sweep_dir, LOCK_FILE) is True


# ---------------------------------------------------------------------------
# what a point's run folder says


def run_status(sweep_dir: Path, point: Point) -> str:
    """The point's run as a person should see it (``interrupted`` when no process of it is
    left, proved through the run folder's lock and recorded identities)."""
    run_dir = point_dir(sweep_dir, point)
    return effective_status(read_run_info(run_dir), run_dir)


def final_status(sweep: Sweep, why: str) -> tuple[SweepStatus, str]:
    """How a sweep ended once no point runs: finished, failed (with the count), or
    ``why`` (stopped / cancelled) while some points are left to do."""
    c = sweep.counts()
    n = len(sweep.points)
    left = n - c.get("finished", 0) - c.get("failed", 0)
    if left:
        status: SweepStatus = "cancelled" if why == "cancelled" else "stopped"
        failed = f", {c['failed']} failed" if c.get("failed") else ""
        return (
            status,
            f"{left} of {n} points not finished{failed}; continue with `n2n-core sweep resume`",
        )
    if c.get("failed"):
        return "failed", f"{c['failed']} of {n} points failed"
    return "finished", f"{n} points finished"
