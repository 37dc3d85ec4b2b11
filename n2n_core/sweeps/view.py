"""A sweep as people see it: one typed model for ``sweep status`` (table and ``--json``)
and the TUI's Sweeps screen.

A point's status comes from ``sweep.json`` while its scheduler lives; once none
does, nobody updates that file and the point's run folder knows better. Step
and PSNR always come from the run folder (the caller passes the summaries it
has; the TUI keeps them current already, the CLI reads them once). A point whose
folder is not its own (:func:`~n2n_core.sweeps.store.point_problem`) is shown
``refused``, with why, and nothing of that folder is shown or read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from n2n_core.runs.summary import RunSummary, summarize_run
from n2n_core.sweeps.store import (
    UNREAD,
    Sweep,
    point_problem,
    read_sweep,
    results_dir_of,
    scheduler_alive,
)

REFUSED = "refused"


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


@dataclass(frozen=True)
class PointView:
    index: int
    params: dict[str, Any] = field(compare=False, hash=False)
    params_text: tuple[str, ...]  # one value per grid key, as the table shows it
    status: str
    run: str  # the run folder's name
    run_dir: Path | None  # None when refused: not this sweep's folder
    step: int = 0
    total_steps: int | None = None
    best_psnr: float | None = None
    last_psnr: float | None = None
    devices: tuple[str, ...] | None = None
    job_id: str | None = None
    job_state: str | None = None
    refused: str | None = None  # why the folder sweep.json names is not this point's

    @property
    def key(self) -> str:
        return self.run

    @property
    def job(self) -> str:
        return f"{self.job_id} {self.job_state or ''}".strip() if self.job_id else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "params": self.params,
            "status": self.status,
            "run": self.run,
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "step": self.step,
            "total_steps": self.total_steps,
            "best_psnr": _round(self.best_psnr),
            "last_psnr": _round(self.last_psnr),
            "devices": None if self.devices is None else list(self.devices),
            "job_id": self.job_id,
            "job_state": self.job_state,
            "refused": self.refused,
        }


@dataclass(frozen=True)
class SweepView:
    path: Path
    name: str
    status: str
    message: str
    preset: str
    grid: dict[str, list[Any]] = field(compare=False, hash=False)
    seeds: int
    executor: str
    scheduler_alive: bool
    created: float | None
    ended: float | None
    points: tuple[PointView, ...]

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def grid_keys(self) -> tuple[str, ...]:
        return tuple(self.grid) + (("train.seed",) if self.seeds > 1 else ())

    @cached_property  # a view never changes; the TUI asks for each count on every redraw
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out

    @property
    def total(self) -> int:
        return len(self.points)

    @property
    def finished(self) -> int:
        return self.counts.get("finished", 0)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    @property
    def running(self) -> int:
        return self.counts.get("running", 0)

    @property
    def done(self) -> int:
        return self.finished + self.failed

    def to_json(self) -> dict[str, Any]:
        """What ``sweep status --json`` prints."""
        return {
            "sweep": str(self.path),
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "preset": self.preset,
            "grid": self.grid,
            "seeds": self.seeds,
            "executor": self.executor,
            "scheduler_alive": self.scheduler_alive,
            "created": self.created,
            "ended": self.ended,
            "counts": self.counts,
            "points": [p.to_json() for p in self.points],
        }


def _text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def view_of(
    sweep_dir: Path, sweep: Sweep, runs: Mapping[str, RunSummary | None], alive: bool
) -> SweepView:
    """The view of ``sweep``; ``runs``: the points' run summaries by folder name."""
    keys = tuple(sweep.grid) + (("train.seed",) if sweep.seeds > 1 else ())
    points = []
    results_real = os.path.realpath(results_dir_of(sweep_dir))
    for p in sweep.points:
        s = runs.get(p.run)
        refused = point_problem(sweep_dir, p, s.info if s is not None else UNREAD, results_real)
        if refused is not None:
            s = None  # a folder not this point's: nothing of it is shown
        status = p.status
        if refused is not None:
            status = REFUSED
        elif not alive and status == "running":
            status = s.status if s else "missing"  # nobody updates sweep.json now
        points.append(
            PointView(
                index=p.index,
                params=p.params,
                params_text=tuple(_text(p.params.get(k, "")) for k in keys),
                status=status,
                run=p.run,
                run_dir=None if refused is not None else results_dir_of(sweep_dir) / p.run,
                step=s.step if s else 0,
                total_steps=s.total_steps if s else None,
                best_psnr=s.best_psnr if s else None,
                last_psnr=s.last_psnr if s else None,
                devices=None if p.devices is None else tuple(p.devices),
                job_id=p.job_id,
                job_state=p.job_state,
                refused=refused,
            )
        )
    status = sweep.status
    if status == "running" and not alive:
        status = "interrupted"
    return SweepView(
        path=Path(sweep_dir),
        name=sweep.name,
        status=status,
        message=sweep.message,
        preset=sweep.preset,
        grid=sweep.grid,
        seeds=sweep.seeds,
        executor=sweep.executor,
        scheduler_alive=alive,
        created=sweep.created,
        ended=sweep.ended,
        points=tuple(points),
    )


def read_view(sweep_dir: str | Path) -> SweepView:
    """Read ``sweep.json`` and each point's run folder: what ``sweep status`` shows."""
    sweep_dir = Path(sweep_dir)
    sweep = read_sweep(sweep_dir)
    runs = {}
    for p in sweep.points:
        run_dir = results_dir_of(sweep_dir) / p.run
        # A refused point's folder is never read (view_of says why).
        if point_problem(sweep_dir, p) is None and run_dir.is_dir():
            runs[p.run] = summarize_run(run_dir)
    return view_of(sweep_dir, sweep, runs, scheduler_alive(sweep_dir))
