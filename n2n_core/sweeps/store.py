"""Sweeps: a preset times a grid of values (times seeds) becomes points, one run folder each.

A sweep lives in ``RESULTS/sweeps/NNNNN-name/``::

    sweep.json      base preset, grid, points (params, status, run folder, devices, job)
    scheduler.log   what the scheduler did, one timestamped line per event
    points/         each point's console output (its run folder keeps log.txt as usual)

A sweep without a grid is one point: a run queued until its devices are free
(see ``scheduler.DeviceClaim``). Every point is an ordinary run folder in
``RESULTS`` (status ``queued`` until it starts) whose ``run.json`` names its ``sweep`` and ``params``, so everything that
reads runs works unchanged. Every point is validated before anything is created:
each bad grid value, and each combination the preset model rejects, is one
problem of one :class:`UserError`.

This module decides and records (grid, points, sweep.json); starting points is
``scheduler.py`` (local) and ``slurm.py``.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from n2n_core.config.preset import (
    SEED_MAX,
    Preset,
    parse_value,
    read_preset_data,
    set_key,
    validate_preset,
)
from n2n_core.errors import UserError
from n2n_core.files.atomic import atomic_write_text
from n2n_core.files.checks import read_bounded
from n2n_core.process.locks import FolderLock, is_held
from n2n_core.runs.info import effective_status, read_run_info
from n2n_core.runs.paths import allocate_run_dir

SWEEP_FILE = "sweep.json"
LOG_FILE = "scheduler.log"
LOCK_FILE = "scheduler.lock"
CANCEL_FILE = "cancel.request"
SWEEPS_DIR = "sweeps"
FORMAT = "n2n-sweep/1"
# At most this many points (grid combinations times seeds) per sweep: each is a run
# folder, and the plan holds every point's preset in memory before anything is written.
MAX_POINTS = 10_000
# sweep.json of MAX_POINTS points is a few MB; anything far bigger is not ours.
MAX_SWEEP_BYTES = 64 << 20

PointStatus = Literal["pending", "running", "finished", "failed", "stopped", "cancelled"]
SweepStatus = Literal["pending", "running", "finished", "failed", "stopped", "cancelled"]
DONE = ("finished", "failed")


# ---------------------------------------------------------------------------
# the grid


def split_values(raw: str) -> list[str]:
    """``"0.1,0.2"`` -> two values; commas inside ``[...]``/``{...}`` belong to the value."""
    out, depth, cur = [], 0, []
    for ch in raw:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [v.strip() for v in out]


def parse_grid(items: list[str]) -> tuple[dict[str, list[Any]], dict[str, list[str]], list[str]]:
    """``--grid KEY=V1,V2`` flags -> (values per key, their raw text, problems)."""
    grid: dict[str, list[Any]] = {}
    raw: dict[str, list[str]] = {}
    problems: list[str] = []
    for text in items:
        key, eq, values = text.partition("=")
        key = key.strip()
        if not eq or not key:
            problems.append(f"--grid {text!r}: expected KEY=V1,V2,..., e.g. train.lr=1e-3,3e-4")
            continue
        if any(not part for part in key.split(".")):
            problems.append(f"--grid {text!r}: bad key {key!r}")
            continue
        if key in grid:
            problems.append(f"--grid {key}: key given twice; put all its values in one --grid")
            continue
        texts = split_values(values)
        if any(not v for v in texts):
            problems.append(f"--grid {text!r}: empty value")
            continue
        if len(set(texts)) != len(texts):
            problems.append(f"--grid {text!r}: a value is listed twice")
            continue
        grid[key] = [parse_value(v) for v in texts]
        raw[key] = texts
    return grid, raw, problems


@dataclass
class SweepPlan:
    """A validated sweep, before anything is written: the base and every point's preset."""

    preset_path: str
    base: dict[str, Any]  # the preset file after --set, before the grid
    sets: list[str]
    grid: dict[str, list[Any]]
    seeds: int
    params: list[dict[str, Any]]  # one per point, grid keys (and train.seed) -> value
    presets: list[Preset]


def _with(base: dict[str, Any], params: dict[str, Any], what: str) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for key, value in params.items():
        set_key(data, key.split("."), value, what)
    return data


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in params.items())


def _unknown_prefix(key: str, message: str) -> str | None:
    """The part of the dotted ``key`` (``nosuch`` of ``nosuch.lr``) that ``message`` calls an
    unknown key; None when the message is about something else."""
    parts = key.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if f": {prefix}: unknown key" in message:
            return prefix
    return None


def plan_sweep(
    preset_path: str | Path, grid_items: list[str], sets: list[str], seeds: int
) -> SweepPlan:
    """Parse and validate every point; all problems are raised together, nothing is written."""
    from n2n_core.config.preset import apply_overrides

    if seeds < 1:
        raise UserError(f"--seeds {seeds}: must be >= 1")
    if seeds > MAX_POINTS:
        raise UserError(f"--seeds {seeds}: at most {MAX_POINTS} points per sweep")
    data = apply_overrides(read_preset_data(preset_path), sets)
    base_preset = validate_preset(copy.deepcopy(data), str(preset_path))
    grid, raw, problems = parse_grid(grid_items)
    # Counted before any point is built: the product of the grid can be huge.
    n_points = math.prod(len(v) for v in grid.values()) * seeds
    if n_points > MAX_POINTS:
        sizes = " x ".join([*(str(len(v)) for v in grid.values()), *([str(seeds)] * (seeds > 1))])
        raise UserError(
            f"sweep: {n_points} points asked for ({sizes}); at most {MAX_POINTS} per sweep"
        )
    last_seed = base_preset.train.seed + seeds - 1
    if seeds > 1 and last_seed > SEED_MAX:
        raise UserError(
            f"--seeds {seeds}: seeds {base_preset.train.seed}..{last_seed} go past "
            f"train.seed's largest value {SEED_MAX}"
        )
    set_keys = {s.partition("=")[0].strip() for s in sets}
    for key in grid:
        if key in set_keys:
            problems.append(f"--grid {key}: also given with --set; keep one")
    if seeds > 1 and "train.seed" in grid:
        problems.append("--grid train.seed: use either --seeds or a train.seed grid, not both")
    # Each value on its own first, so a bad value is named once, not once per point.
    for key, values in grid.items():
        try:  # the key itself first: a path through a value is said once, not once per value
            _with(data, {key: None}, f"--grid {key}")
        except UserError as e:
            problems.append(str(e))
            continue
        for value, text in zip(values, raw[key], strict=True):
            what = f"--grid {key}={text}"
            try:
                validate_preset(_with(data, {key: value}, what), what)
            except UserError as e:
                unknown = _unknown_prefix(key, str(e))
                if unknown is not None:  # about the key (or its section): say it once
                    problems.append(f"--grid {key}: {unknown}: unknown key (not a preset key)")
                    break
                section = key.rpartition(".")[0]
                if key.endswith(".type") and "unknown key" in str(e):
                    # The other kind's parameters stay behind: the whole section must change.
                    kinds = ",".join(f"{{type: {t}}}" for t in raw[key])
                    problems.append(
                        f"{e}; to change the kind, grid the whole section: "
                        f"--grid '{section}={kinds}'"
                    )
                    continue
                problems.append(str(e))
    if problems:
        raise UserError.collected(problems)

    seed_values = [base_preset.train.seed + k for k in range(seeds)] if seeds > 1 else [None]
    params_list, presets = [], []
    for combo in itertools.product(*grid.values()):
        for seed in seed_values:
            params = dict(zip(grid.keys(), combo, strict=True))
            if seed is not None:
                params["train.seed"] = seed
            what = f"point {params_text(params)}"
            try:
                presets.append(validate_preset(_with(data, params, what), what))
            except UserError as e:
                problems.append(str(e))
                continue
            params_list.append(params)
    if problems:
        raise UserError.collected(problems)
    kinds = {p.runtime.device for p in presets}
    if len(kinds) > 1:
        raise UserError(
            f"runtime.device: one kind of device per sweep (the grid gives {sorted(kinds)})"
        )
    return SweepPlan(
        str(preset_path), data, list(sets), grid, seeds, params_list, presets or [base_preset]
    )


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

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Point:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str) -> Sweep:
        try:
            names = set(cls.__dataclass_fields__)
            kw = {k: v for k, v in d.items() if k in names}
            kw["points"] = [Point.from_json(p) for p in d.get("points", [])]
            return cls(**kw)
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
    from n2n_core.runs.paths import list_run_dirs

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
    from n2n_core.runs.paths import prepare_run

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


def sweep_view(sweep_dir: str | Path) -> dict[str, Any]:
    """The sweep as ``sweep status --json`` prints it: its fields and one entry per point,
    with step and PSNR read from each point's run folder."""
    from n2n_core.runs.summary import summarize_run

    sweep_dir = Path(sweep_dir)
    sweep = read_sweep(sweep_dir)
    alive = scheduler_alive(sweep_dir)
    points = []
    for p in sweep.points:
        run_dir = point_dir(sweep_dir, p)
        s = summarize_run(run_dir) if run_dir.is_dir() else None
        status = p.status
        if not alive and status == "running":
            # Nobody updates sweep.json any more: the run folder knows better.
            status = s.status if s else "missing"
        points.append(
            {
                "index": p.index,
                "params": p.params,
                "status": status,
                "run": p.run,
                "run_dir": str(run_dir),
                "step": s.step if s else 0,
                "total_steps": s.total_steps if s else None,
                "best_psnr": None if not s or s.best_psnr is None else round(s.best_psnr, 2),
                "last_psnr": None if not s or s.last_psnr is None else round(s.last_psnr, 2),
                "devices": p.devices,
                "job_id": p.job_id,
                "job_state": p.job_state,
            }
        )
    status = sweep.status
    if status == "running" and not alive:
        status = "interrupted"
    counts: dict[str, int] = {}
    for p in points:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    return {
        "sweep": str(sweep_dir),
        "name": sweep.name,
        "status": status,
        "message": sweep.message,
        "preset": sweep.preset,
        "grid": sweep.grid,
        "seeds": sweep.seeds,
        "executor": sweep.executor,
        "scheduler_alive": alive,
        "created": sweep.created,
        "ended": sweep.ended,
        "counts": counts,
        "points": points,
    }
