"""The sweep list: every sweep under ``RESULTS/sweeps`` with its points' progress.

``sweep.json`` is re-read only when it changed; each point's step and PSNR come
from the run list the app already keeps current (its points are ordinary runs),
so following a sweep costs a ``stat`` and a lock probe per sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n2n_core.errors import UserError
from n2n_core.runs.summary import RunSummary
from n2n_core.sweeps.store import Sweep, list_sweep_dirs, point_dir, read_sweep, scheduler_alive


@dataclass(frozen=True)
class PointRow:
    key: str  # the run folder's name
    index: int
    params: dict[str, Any] = field(compare=False, hash=False)
    params_text: tuple[str, ...]
    status: str
    step: int = 0
    total_steps: int | None = None
    best_psnr: float | None = None
    last_psnr: float | None = None
    job: str = ""
    run_dir: Path = Path()


@dataclass(frozen=True)
class SweepRow:
    path: Path
    name: str
    status: str
    total: int
    finished: int
    failed: int
    running: int
    executor: str
    created: float | None
    grid_keys: tuple[str, ...]
    points: tuple[PointRow, ...]
    message: str = ""

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def done(self) -> int:
        return self.finished + self.failed


def _stamp(p: Path) -> tuple[int, int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def sweep_row(path: Path, sweep: Sweep, runs: dict[str, RunSummary], alive: bool) -> SweepRow:
    keys = list(sweep.grid) + (["train.seed"] if sweep.seeds > 1 else [])
    points = []
    for p in sweep.points:
        run = runs.get(p.run)
        status = p.status
        if not alive and status == "running":
            status = run.status if run else "missing"  # nobody updates sweep.json now
        job = f"{p.job_id} {p.job_state or ''}".strip() if p.job_id else ""
        points.append(
            PointRow(
                key=p.run,
                index=p.index,
                params=p.params,
                params_text=tuple(_text(p.params.get(k, "")) for k in keys),
                status=status,
                step=run.step if run else 0,
                total_steps=run.total_steps if run else None,
                best_psnr=run.best_psnr if run else None,
                last_psnr=run.last_psnr if run else None,
                job=job,
                run_dir=point_dir(path, p),
            )
        )
    status = sweep.status
    if status == "running" and not alive:
        status = "interrupted"
    return SweepRow(
        path=path,
        name=sweep.name,
        status=status,
        total=len(points),
        finished=sum(p.status == "finished" for p in points),
        failed=sum(p.status == "failed" for p in points),
        running=sum(p.status == "running" for p in points),
        executor=sweep.executor,
        created=sweep.created,
        grid_keys=tuple(keys),
        points=tuple(points),
        message=sweep.message,
    )


class SweepIndex:
    """Tracks sweep folders; :meth:`scan` returns one row per readable sweep (oldest first)."""

    def __init__(self, results_dir: str | Path):
        self.results_dir = Path(results_dir)
        self._sweeps: dict[Path, tuple[tuple[int, int] | None, Sweep | None]] = {}

    def scan(self, runs: list[RunSummary]) -> list[SweepRow]:
        by_name = {r.path.name: r for r in runs}
        rows = []
        for d in list_sweep_dirs(self.results_dir):
            stamp = _stamp(d / "sweep.json")
            old = self._sweeps.get(d)
            if old is None or old[0] != stamp:
                try:
                    sweep: Sweep | None = read_sweep(d)
                except UserError:
                    sweep = None  # half-written by hand, or another version: skipped
                self._sweeps[d] = (stamp, sweep)
            sweep = self._sweeps[d][1]
            if sweep is not None:
                rows.append(sweep_row(d, sweep, by_name, scheduler_alive(d)))
        return rows
