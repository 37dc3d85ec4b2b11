"""``n2n-core sweep``: start a sweep, resume it, show its status, cancel it.

The verbs glue :mod:`sweep` (plan, records) to a scheduler: :mod:`scheduler`
(local slots) or :mod:`slurm` (submitit). Everything is checked before the
sweep folder is written: every point's preset, its data paths, the slots and
devices (or the Slurm settings).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from n2n_core.errors import UserError, printable
from n2n_core.files.safe import open_append
from n2n_core.runs.layout import RunPaths
from n2n_core.sweeps.plan import plan_sweep
from n2n_core.sweeps.store import (
    CANCEL_FILE,
    ENDED,
    LOG_FILE,
    Sweep,
    check_points,
    create_sweep,
    point_dir,
    read_sweep,
    scheduler_alive,
)
from n2n_core.sweeps.view import read_view

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CANCEL_WAIT_S = 180.0


def _slots_for(sweep_presets, slots: int | None, devices: list[str] | None):
    from n2n_core.sweeps.local import detect_devices, plan_slots

    rt = sweep_presets[0].runtime
    if any(p.runtime.nnodes > 1 for p in sweep_presets):
        raise UserError("runtime.nnodes: more than one node needs --executor slurm")
    kind, available = detect_devices(rt.device)
    nproc = max(p.runtime.nproc for p in sweep_presets)
    return plan_slots(kind, available, nproc, slots, devices, os.cpu_count() or 1)


def start(a: argparse.Namespace, argv: list[str]) -> int:
    from n2n_core.config.schema import check_data_paths
    from n2n_core.data.fetch import fetch_hint
    from n2n_core.sweeps.local import parse_devices

    if a.json:
        raise UserError("sweep PRESET: --json is for sweep status")
    from n2n_core.config.catalogue import find_preset

    if a.search is not None:
        return start_search(a, argv)
    given = [f for f, on in (("--space", a.space), ("--trials", a.trials is not None)) if on]
    given += ["--objective"] * (a.objective != "best_psnr")
    given += [f"--prune {a.prune}"] * (a.prune != "none")
    if given:
        raise UserError(f"{given[0]}: only with --search tpe|random|grid")

    plan = plan_sweep(find_preset(a.target, a.presets_dir), a.grid, a.overrides, a.seeds)
    for preset in plan.presets:
        check_data_paths(preset, fetch_hint)
    name = a.name or plan.presets[0].name
    if not NAME_RE.match(name):
        raise UserError(f"--name {name!r}: letters, digits, '.', '_' and '-' only (at most 64)")
    devices = parse_devices(a.devices)
    slots = None
    if a.executor == "local":
        slots = _slots_for(plan.presets, a.slots, devices)
    else:
        from n2n_core.sweeps.slurm import check_slurm

        check_slurm(plan.presets, devices)
    sweep_dir = create_sweep(plan, a.results_dir, name, a.executor, a.slots, devices, argv)
    print(f"sweep folder: {printable(str(sweep_dir))} ({len(plan.presets)} points)", flush=True)
    if a.detach:
        return _detach(sweep_dir)
    return _schedule(sweep_dir, read_sweep(sweep_dir), slots, echo=True)


def start_search(a: argparse.Namespace, argv: list[str]) -> int:
    """``sweep PRESET --search ...``: check everything, write the sweep folder and its study
    (no point yet: the scheduler asks the study for each), then schedule."""
    from n2n_core.config.catalogue import find_preset
    from n2n_core.config.schema import check_data_paths
    from n2n_core.data.fetch import fetch_hint
    from n2n_core.sweeps.local import parse_devices
    from n2n_core.sweeps.plan import MAX_POINTS
    from n2n_core.sweeps.search import check_objective, open_study, optuna_module
    from n2n_core.sweeps.space import grid_points, plan_search, sampled_preset, space_text
    from n2n_core.sweeps.store import create_search_sweep

    if a.grid:
        raise UserError("--grid: not with --search; give the values as --space KEY=choice(V1,V2)")
    if a.seeds != 1:
        raise UserError("--seeds: not with --search; search train.seed with --space")
    for flag, value in (
        ("--startup", a.startup),
        ("--prune-warmup", a.prune_warmup),
        ("--prune-startup", a.prune_startup),
    ):
        if value < 0:
            raise UserError(f"{flag} {value}: must be >= 0")
    objective = check_objective(a.objective)
    plan = plan_search(find_preset(a.target, a.presets_dir), a.space, a.overrides)
    if a.search == "grid":
        points = grid_points(plan.space)
        trials = len(points) if a.trials is None else a.trials
        if trials > len(points):
            raise UserError(f"--trials {trials}: the grid has {len(points)} points")
        problems = []
        for params in points[:trials]:  # a grid is known in full: every point checked now
            try:
                sampled_preset(plan.base, params)
            except UserError as e:
                problems.append(str(e))
        if problems:
            raise UserError.collected(problems)
    elif a.trials is None:
        raise UserError(f"--search {a.search}: --trials N is missing (how many points to run)")
    else:
        trials = a.trials
    if not 1 <= trials <= MAX_POINTS:
        raise UserError(f"--trials {trials}: between 1 and {MAX_POINTS}")
    check_data_paths(plan.preset, fetch_hint)
    name = a.name or plan.preset.name
    if not NAME_RE.match(name):
        raise UserError(f"--name {name!r}: letters, digits, '.', '_' and '-' only (at most 64)")
    devices = parse_devices(a.devices)
    slots = None
    if a.executor == "local":
        slots = _slots_for([plan.preset], a.slots, devices)
    else:
        from n2n_core.sweeps.slurm import check_slurm

        check_slurm([plan.preset], devices)
    optuna_module()  # missing: one error line before anything is written
    search = {
        "sampler": a.search,
        "trials": trials,
        "space": space_text(plan.space),
        "objective": objective,
        "seed": plan.preset.train.seed if a.search_seed is None else a.search_seed,
        "startup": a.startup,
        "prune": a.prune,
        "prune_warmup": a.prune_warmup,
        "prune_startup": a.prune_startup,
        "argv": argv,
    }
    sweep_dir = create_search_sweep(plan, a.results_dir, name, a.executor, a.slots, devices, search)
    open_study(sweep_dir, search)
    print(
        f"sweep folder: {printable(str(sweep_dir))} ({a.search} search, {trials} trials)",
        flush=True,
    )
    if a.detach:
        return _detach(sweep_dir)
    return _schedule(sweep_dir, read_sweep(sweep_dir), slots, echo=True)


def _schedule(sweep_dir: Path, sweep: Sweep, slots, echo: bool) -> int:
    if sweep.executor == "slurm":
        from n2n_core.sweeps.slurm import run_slurm

        return run_slurm(sweep_dir, sweep, echo)
    from n2n_core.sweeps.local import run_local

    return run_local(sweep_dir, sweep, slots, echo)


def _detach(sweep_dir: Path) -> int:
    """Start ``sweep resume SWEEP_DIR`` in its own session; its console goes to scheduler.out."""
    out = sweep_dir / "scheduler.out"
    with open_append(out, "the scheduler log", binary=True) as f:
        subprocess.Popen(
            [sys.executable, "-m", "n2n_core.cli", "sweep", "resume", "--", str(sweep_dir)],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    print(f"scheduler started in the background; log: {printable(str(sweep_dir / LOG_FILE))}")
    print(f"follow it with: n2n-core sweep status {printable(str(sweep_dir))}")
    return 0


def resume(a: argparse.Namespace) -> int:
    sweep_dir = Path(a.sweep_dir)
    sweep = read_sweep(sweep_dir)
    if scheduler_alive(sweep_dir):
        raise UserError(f"{sweep_dir}: a scheduler is already running this sweep")
    asked = sweep.search is None or len(sweep.points) >= int(sweep.search.get("trials", 0))
    if asked and all(p.status in ENDED for p in sweep.points):
        raise UserError(f"{sweep_dir}: every point has ended ({sweep.status}); nothing to resume")
    check_points(sweep_dir, sweep)  # before any point's folder is read, written or run
    slots = None
    if sweep.executor == "local":
        from n2n_core.config.preset import load_preset

        presets = [load_preset(RunPaths(point_dir(sweep_dir, p)).preset) for p in sweep.points]
        if sweep.search is not None:  # trials not yet asked share the base's devices
            from n2n_core.config.schema import validate_preset

            presets.append(validate_preset(dict(sweep.base), f"{sweep_dir}/sweep.json base"))
        slots = _slots_for(presets, sweep.slots, sweep.devices)
    return _schedule(sweep_dir, sweep, slots, echo=True)


def status(a: argparse.Namespace) -> int:
    view = read_view(a.sweep_dir)
    if a.json:
        print(json.dumps(view.to_json()))
        return 0
    from n2n_core.cli.views import sweep_table

    sweep_table(view)
    return 0


def cancel(a: argparse.Namespace) -> int:
    sweep_dir = Path(a.sweep_dir)
    sweep = read_sweep(sweep_dir)
    if sweep.status in ("finished", "failed", "cancelled") and not scheduler_alive(sweep_dir):
        print(f"{printable(str(sweep_dir))}: sweep already {sweep.status}; nothing to cancel")
        return 0
    if scheduler_alive(sweep_dir):
        # The scheduler holds its points' Popen objects: it stops them itself.
        from n2n_core.files.atomic import atomic_write_text

        atomic_write_text(sweep_dir / CANCEL_FILE, f"{time.time()}\n")
        print(f"cancel requested; waiting for the scheduler to stop its points ({LOG_FILE})")
        deadline = time.monotonic() + CANCEL_WAIT_S
        while scheduler_alive(sweep_dir) and time.monotonic() < deadline:
            time.sleep(0.3)
        if scheduler_alive(sweep_dir):
            raise UserError(
                f"{sweep_dir}: the scheduler has not stopped after {CANCEL_WAIT_S:.0f}s; "
                f"see {sweep_dir / LOG_FILE}"
            )
    elif sweep.executor == "slurm":
        from n2n_core.sweeps.slurm import cancel_jobs

        check_points(sweep_dir, sweep)  # before any job is cancelled or run folder read
        cancel_jobs(sweep_dir, sweep)
    else:
        from n2n_core.sweeps.driver import SweepLog
        from n2n_core.sweeps.local import cancel_without_scheduler

        check_points(sweep_dir, sweep)  # before any run is signalled
        log = SweepLog(sweep_dir, echo=True)
        try:
            cancel_without_scheduler(sweep_dir, sweep, log)
        finally:
            log.close()
    after = read_sweep(sweep_dir)
    print(f"sweep {after.status}: {printable(after.message)}")
    return 0
