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
import dataclasses
import json
import math
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from n2n_core.config.schema import Executor
from n2n_core.errors import UserError
from n2n_core.files.atomic import atomic_write_text
from n2n_core.files.checks import read_bounded
from n2n_core.files.safe import own_folder
from n2n_core.process.locks import FolderLock
from n2n_core.runs.folders import (
    allocate_run_dir,
    is_run_folder_name,
    list_run_dirs,
    prepare_run,
    scheduler_alive,
)
from n2n_core.runs.info import RunInfo, effective_status, read_run_info
from n2n_core.runs.layout import SCHEDULER_LOCK, SWEEPS_DIR
from n2n_core.sweeps.plan import SweepPlan, params_text

SWEEP_FILE = "sweep.json"
LOG_FILE = "scheduler.log"
LOCK_FILE = SCHEDULER_LOCK
CANCEL_FILE = "cancel.request"
POINTS_DIR = "points"
FORMAT = "n2n-sweep/1"
# sweep.json of MAX_POINTS points is a few MB; anything far bigger is not ours.
MAX_SWEEP_BYTES = 64 << 20

# ``pruned``: a search's trial that its pruner stopped early (its snapshot kept; it is not
# run again by ``sweep resume``, though its run can be resumed by hand).
PointStatus = Literal["pending", "running", "finished", "failed", "stopped", "cancelled", "pruned"]
SweepStatus = Literal["pending", "running", "finished", "failed", "stopped", "cancelled"]
DONE = ("finished", "failed")
ENDED = ("finished", "failed", "pruned")  # a point's ends that no scheduler continues

# A Slurm job id (``12345``, an array task ``12345_7``): the only shape that is ever
# handed to scancel or sacct. submitit's local executor's ids are pids (digits too);
# its debug executor's are ``DEBUG_<n>`` and never reach a command line.
SLURM_JOB_ID = re.compile(r"[0-9]+(?:_[0-9]+)?")
DEBUG_JOB_ID = re.compile(r"DEBUG_[0-9]+")


def is_slurm_job_id(value: object) -> bool:
    return isinstance(value, str) and SLURM_JOB_ID.fullmatch(value) is not None


# ---------------------------------------------------------------------------
# what each key of sweep.json may hold (checked once, when the file is read)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _strs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _object(v: Any) -> bool:
    return isinstance(v, dict)


def _grid(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, list) for x in v.values())


def _job_id(v: Any) -> bool:
    return is_slurm_job_id(v) or (isinstance(v, str) and DEBUG_JOB_ID.fullmatch(v) is not None)


def _one_of(values: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in values


def _or_null(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or test(v)


_Types = dict[str, tuple[Callable[[Any], bool], str]]

POINT_TYPES: _Types = {
    "index": (_int, "a whole number"),
    "params": (_object, "an object of preset keys and values"),
    "run": (_str, "a run folder's name"),
    "status": (_one_of(get_args(PointStatus)), f"one of {', '.join(get_args(PointStatus))}"),
    "devices": (_or_null(_strs), "a list of device ids or null"),
    "job_id": (_or_null(_job_id), "a Slurm job id (digits, or digits_digits) or null"),
    "job_state": (_or_null(_str), "a string or null"),
    "started": (_or_null(_number), "a time or null"),
    "ended": (_or_null(_number), "a time or null"),
    "exit_code": (_or_null(_int), "a whole number or null"),
    "trial": (_or_null(lambda v: _int(v) and v >= 0), "a trial number or null"),
    "value": (_or_null(_number), "a number or null"),
}
SWEEP_TYPES: _Types = {
    "name": (_str, "a string"),
    "preset": (_str, "a string"),
    "base": (_object, "an object"),
    "grid": (_grid, "an object of preset keys and lists of values"),
    "sets": (_strs, "a list of strings"),
    "seeds": (lambda v: _int(v) and v >= 1, "a whole number >= 1"),
    "executor": (_one_of(get_args(Executor)), f"one of {', '.join(get_args(Executor))}"),
    "slots": (_or_null(lambda v: _int(v) and v >= 1), "a whole number >= 1 or null"),
    "devices": (_or_null(_strs), "a list of device ids or null"),
    "points": (lambda v: isinstance(v, list), "a list of points"),
    "status": (_one_of(get_args(SweepStatus)), f"one of {', '.join(get_args(SweepStatus))}"),
    "message": (_str, "a string"),
    "created": (_number, "a time"),
    "ended": (_or_null(_number), "a time or null"),
    "scheduler": (_or_null(_object), "an object or null"),
    "format": (_str, "a string"),
    "search": (_or_null(_object), "an object or null"),
}


def _shown(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _typed(cls: type, types: _Types, d: Any, where: str) -> tuple[dict, dict, list[str]]:
    """``d`` split into known keys (each of its type) and unknown ones (kept as they are);
    the problems, each naming its key."""
    at = f"{where}." if where else ""
    if not isinstance(d, dict):
        return {}, {}, [f"{where or 'the file'}: expected an object, got {_shown(d)}"]
    problems = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name in types and f.name not in d and required:
            problems.append(f"{at}{f.name}: missing")
    known = {k: v for k, v in d.items() if k in types}
    for k, v in known.items():
        test, expected = types[k]
        if not test(v):
            problems.append(f"{at}{k}: expected {expected}, got {_shown(v)}")
    return known, {k: v for k, v in d.items() if k not in types}, problems


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
    trial: int | None = None  # a search's Optuna trial number
    value: float | None = None  # the objective the study was told (a search's)

    # Keys this version does not know (written by a newer one): kept on rewrite.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        return {**self.extra, **copy.deepcopy(d)}

    @classmethod
    def from_json(cls, d: Any, source: str = SWEEP_FILE, where: str = "point") -> Point:
        """The point ``d`` (``where`` in ``source``); a :class:`UserError` naming the file
        and the key when one holds the wrong type. Unknown keys are kept."""
        known, extra, problems = _typed(cls, POINT_TYPES, d, where)
        _raise_first(source, problems)
        return cls(**known, extra=extra)


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
    # A search (docs/ARCHITECTURE.md, sweeps): sampler, trials, space, objective, pruner, and what the scheduler
    # last learnt from the study (best trial, importances); None for a grid.
    search: dict[str, Any] | None = None

    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # unknown keys, kept

    def to_json(self) -> dict[str, Any]:
        d = {
            k: [p.to_json() for p in self.points] if k == "points" else copy.deepcopy(v)
            for k, v in ((k, getattr(self, k)) for k in self.__dataclass_fields__)
            if k != "extra"
        }
        return {**self.extra, **d}

    @classmethod
    def from_json(cls, d: Any, source: str) -> Sweep:
        """The sweep ``d`` read from ``source``, every key checked for its type once, here:
        a wrong one is a :class:`UserError` naming the file and the key (never a crash
        later, in a scheduler that has started points). Unknown keys are kept."""
        known, extra, problems = _typed(cls, SWEEP_TYPES, d, "")
        _raise_first(source, problems)
        points = []
        runs: dict[str, int] = {}
        for i, raw in enumerate(known["points"]):
            point = Point.from_json(raw, source, f"points[{i}]")
            if point.index != i:  # the schedulers find a point by its index
                problems.append(f"points[{i}].index: {point.index}, but it is point {i}")
            elif point.run in runs:
                problems.append(
                    f"points[{i}].run: {_shown(point.run)} is point {runs[point.run]}'s run too"
                )
            runs.setdefault(point.run, i)
            points.append(point)
        _raise_first(source, problems)
        return cls(**{**known, "points": points}, extra=extra)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out


def _raise_first(source: str, problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{source}: {problems[0]}{more}")


def _whole(sweep_dir: str | Path) -> Path:
    """``sweep_dir`` with a name of its own (``.`` or ``..`` made absolute)."""
    p = Path(sweep_dir)
    return Path(os.path.abspath(p)) if p.name in ("", "..") else p


def results_dir_of(sweep_dir: Path) -> Path:
    """``RESULTS/sweeps/NNNNN-name`` -> ``RESULTS`` (where its points' run folders are)."""
    return _whole(sweep_dir).parent.parent


def sweep_ref(sweep_dir: Path) -> str:
    """How a point's ``run.json`` names its sweep: ``sweeps/NNNNN-name``."""
    return f"{SWEEPS_DIR}/{_whole(sweep_dir).name}"


UNREAD: Any = object()  # point_problem: no run.json given, read it


def point_problem(
    sweep_dir: Path, point: Point, info: RunInfo | None = UNREAD, results_real: str | None = None
) -> str | None:
    """Why the folder ``sweep.json`` names as the point's run is not this sweep's to read,
    write or signal; None when it is, or when nothing is there at all.

    A point's run is a plain run-folder name (no separator: ``/abs`` or ``../..`` climb
    elsewhere), a real folder (a symlink is refused, not followed) that resolves
    inside the sweep's results folder, whose own ``run.json`` names this sweep and
    these params. ``info``: that ``run.json`` when the caller has read it already;
    ``results_real``: the results folder's realpath, when the caller checks many points.
    """
    name = point.run
    if not is_run_folder_name(name):
        return f"run {_shown(name)} is not the name of a run folder in the results folder"
    results = results_dir_of(sweep_dir)
    path = results / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None  # no folder: nothing of anyone's to touch (it is "missing")
    except OSError as e:
        return f"run folder {path}: {e.strerror or e}"
    if stat.S_ISLNK(st.st_mode):
        return f"run folder {path} is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a folder"
    if os.path.dirname(os.path.realpath(path)) != (results_real or os.path.realpath(results)):
        return f"run folder {path} resolves outside the results folder {results}"
    if info is UNREAD:
        info = read_run_info(path)
    ref = sweep_ref(sweep_dir)
    if info is None:
        return f"run folder {path} has no readable run.json naming sweep {ref}"
    if info.sweep != ref:
        owner = f"sweep {_shown(info.sweep)}" if info.sweep is not None else "no sweep"
        return f"run folder {path} belongs to {owner}, not {ref}"
    if info.params != point.params:
        return f"run folder {path} ran other params ({params_text(info.params or {})})"
    return None


def _refused(sweep_dir: Path, point: Point, why: str) -> UserError:
    return UserError(f"{sweep_dir}: point {point.index}: {why}; refusing to touch it")


def point_dir(sweep_dir: Path, point: Point) -> Path:
    """The point's run folder, once :func:`point_problem` finds nothing wrong with it: the
    one way to a point's folder, for everything that reads, writes or signals it."""
    why = point_problem(sweep_dir, point)
    if why is not None:
        raise _refused(sweep_dir, point, why)
    return results_dir_of(sweep_dir) / point.run


def check_points(sweep_dir: Path, sweep: Sweep) -> None:
    """Refuse the sweep (one :class:`UserError`, the first point named) when any point's
    folder is not its own: before a resume or cancel acts on any of them."""
    refused = [(p, why) for p in sweep.points if (why := point_problem(sweep_dir, p))]
    if refused:
        p, why = refused[0]
        more = f" (and {len(refused) - 1} more points)" if len(refused) > 1 else ""
        raise _refused(sweep_dir, p, why + more)


def points_folder(sweep_dir: Path) -> Path:
    """``SWEEP/points``, where the points' console output goes: a real folder of the
    sweep's (a symlink planted there is refused, never followed)."""
    return own_folder(Path(sweep_dir) / POINTS_DIR, "the sweep's points log folder", create=True)


def point_log(sweep_dir: Path, point: Point) -> Path:
    """Where the point's console output goes: ``SWEEP/points/RUN.log``."""
    if not is_run_folder_name(point.run):
        raise _refused(sweep_dir, point, f"run {_shown(point.run)} is not a run folder's name")
    return points_folder(sweep_dir) / f"{point.run}.log"


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
    (sweep_dir / POINTS_DIR).mkdir()
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
            sweep=sweep_ref(sweep_dir),
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


def create_search_sweep(
    plan,
    results_dir: str | Path,
    name: str,
    executor: str,
    slots: int | None,
    devices: list[str] | None,
    search: dict[str, Any],
) -> Path:
    """Write a search's sweep folder, no point yet: its scheduler asks the study for each
    point when a slot is free (:func:`add_point`). ``plan``: a ``space.SearchPlan``."""
    sweep_dir = allocate_run_dir(Path(results_dir) / SWEEPS_DIR, name)
    (sweep_dir / POINTS_DIR).mkdir()
    sweep = Sweep(
        name=name,
        preset=plan.preset_path,
        base=plan.base,
        grid={},
        sets=plan.sets,
        seeds=1,
        executor=executor,
        slots=slots,
        devices=devices,
        points=[],
        search=search,
    )
    write_sweep(sweep_dir, sweep)
    return sweep_dir


def add_point(sweep_dir: Path, sweep: Sweep, params: dict[str, Any], preset, trial: int) -> Point:
    """A search's new point: its run folder (queued), then its entry in ``sweep.json``.

    In that order: a scheduler killed between the two leaves a folder that names this
    sweep, the params and (in its name) the trial, which the next scheduler adopts
    (:func:`find_trial_run`) instead of making a second one."""
    argv = list((sweep.search or {}).get("argv") or ["n2n-core", "sweep"])
    run_dir = prepare_run(
        preset,
        results_dir_of(sweep_dir),
        trial_run_name(sweep, trial),
        argv,
        queued=True,
        sweep=sweep_ref(sweep_dir),
        params=params,
    )
    return record_point(sweep_dir, sweep, params, run_dir.name, trial)


def record_point(
    sweep_dir: Path, sweep: Sweep, params: dict[str, Any], run: str, trial: int
) -> Point:
    point = Point(index=len(sweep.points), params=params, run=run, trial=trial)
    sweep.points.append(point)
    write_sweep(sweep_dir, sweep)
    return point


def trial_run_name(sweep: Sweep, trial: int) -> str:
    return f"{sweep.name}-t{trial:03d}"


def find_trial_run(sweep_dir: Path, sweep: Sweep, trial: int, params: dict[str, Any]) -> str | None:
    """The run folder a killed scheduler made for ``trial`` before recording it: named for the
    trial, naming this sweep and these params, and no point's yet."""
    taken = {p.run for p in sweep.points}
    suffix = "-" + trial_run_name(sweep, trial)
    for d in list_run_dirs(results_dir_of(sweep_dir)):
        if d.name in taken or not d.name.endswith(suffix) or not d.name[: -len(suffix)].isdigit():
            continue
        probe = Point(index=len(sweep.points), params=params, run=d.name, trial=trial)
        if point_problem(sweep_dir, probe) is None:
            return d.name
    return None


# ---------------------------------------------------------------------------
# the lock


class SchedulerLock:
    """One scheduler per sweep: the one folder lock (:class:`~n2n_core.process.locks.FolderLock`)
    on ``SWEEP_DIR/scheduler.lock``, held from :meth:`acquire` until :meth:`release` or exit."""

    def __init__(self, sweep_dir: Path):
        self.sweep_dir = Path(sweep_dir)
        self._lock = FolderLock("sweep", name=LOCK_FILE)  # scheduler_alive probes it

    def acquire(self) -> SchedulerLock:
        if scheduler_alive(self.sweep_dir):
            raise UserError(f"{self.sweep_dir}: a scheduler is already running this sweep")
        self._lock.acquire(self.sweep_dir)
        return self

    def release(self) -> None:
        self._lock.release()


# ---------------------------------------------------------------------------
# what a point's run folder says


def run_status(sweep_dir: Path, point: Point) -> str:
    """The point's run as a person should see it (``interrupted`` when no process of it is
    left, proved through the run folder's lock and recorded identities)."""
    run_dir = point_dir(sweep_dir, point)
    return effective_status(read_run_info(run_dir), run_dir)


def final_status(sweep: Sweep, why: str) -> tuple[SweepStatus, str]:
    """How a sweep ended once no point runs: finished, failed (with the count), or
    ``why`` (stopped / cancelled) while some points are left to do (a search's trials
    not yet asked count as left)."""
    c = sweep.counts()
    n = len(sweep.points)
    if sweep.search is not None:
        n = max(n, int(sweep.search.get("trials", n)))
    left = n - c.get("finished", 0) - c.get("failed", 0) - c.get("pruned", 0)
    pruned = f", {c['pruned']} pruned" if c.get("pruned") else ""
    if left:
        status: SweepStatus = "cancelled" if why == "cancelled" else "stopped"
        failed = f", {c['failed']} failed" if c.get("failed") else ""
        return (
            status,
            f"{left} of {n} points not finished{failed}{pruned}; continue with "
            "`n2n-core sweep resume`",
        )
    if c.get("failed"):
        return "failed", f"{c['failed']} of {n} points failed{pruned}"
    if c.get("pruned"):
        return "finished", f"{n} points ended: {c.get('finished', 0)} finished{pruned}"
    return "finished", f"{n} points finished"
