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

from n2n_core.errors import UserError
from n2n_core.runs.summary import RunSummary, summarize_run
from n2n_core.sweeps.store import (
    SWEEP_FILE,
    UNREAD,
    Sweep,
    point_problem,
    read_sweep,
    results_dir_of,
    scheduler_alive,
)

REFUSED = "refused"
BARS = "▁▂▃▄▅▆▇█"


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
    trial: int | None = None  # a search's trial number
    value: float | None = None  # the objective its study was told (a pruned trial's last)

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
            "trial": self.trial,
            "value": _round(self.value),
        }


@dataclass(frozen=True)
class TrialPoint:
    """One ended trial on the best-so-far curve: its own value and the best up to it."""

    trial: int
    index: int  # the point's
    status: str  # finished | pruned | failed
    value: float | None
    best: float | None  # the best completed value up to and including this trial

    def to_json(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "point": self.index,
            "status": self.status,
            "value": _round(self.value),
            "best": _round(self.best),
        }


@dataclass(frozen=True)
class SearchView:
    """What a search has learnt: its best trial, the best-so-far curve over trials (pruned
    ones marked), and which parameter mattered (Optuna's importances, once
    ``MIN_IMPORTANCE_TRIALS`` trials have completed; the scheduler computes them)."""

    sampler: str
    trials: int
    asked: int
    objective: str
    prune: str
    space: dict[str, str] = field(compare=False, hash=False)
    best: PointView | None
    curve: tuple[TrialPoint, ...]
    importances: dict[str, float] | None = field(compare=False, hash=False)
    importances_note: str

    @property
    def pruned(self) -> int:
        return sum(t.status == "pruned" for t in self.curve)

    @property
    def completed(self) -> int:
        return sum(t.status == "finished" and t.value is not None for t in self.curve)

    def best_line(self) -> str:
        b = self.best
        if b is None or b.value is None:
            return "best: none yet (no trial has completed)"
        params = " ".join(f"{k}={search_param(v)}" for k, v in b.params.items())
        return f"best: trial {b.trial} {b.value:.2f} dB ({self.objective}) {params}, run {b.run}"

    def importance_line(self) -> str:
        if not self.importances:
            return self.importances_note
        return "importance: " + "  ".join(f"{k} {v:.2f}" for k, v in self.importances.items())

    def header(self) -> str:
        prune = f", pruner {self.prune}" if self.prune != "none" else ""
        done = f"{self.completed} completed" + (f", {self.pruned} pruned" if self.pruned else "")
        return (
            f"{self.sampler} search: {self.asked}/{self.trials} trials asked ({done}), "
            f"objective {self.objective}{prune}"
        )

    def curve_lines(self, width: int = 60) -> list[str]:
        """The last ``width`` ended trials as two lines of bars on one scale: the best so far,
        and each trial's own value (``×`` pruned, ``!`` failed)."""
        tail = self.curve[-width:]
        values = [v for t in tail for v in (t.value, t.best) if v is not None]
        if not values:
            return []
        lo, hi = min(values), max(values)

        def bar(v: float | None) -> str:
            if v is None:
                return " "
            k = 0 if hi <= lo else round((v - lo) / (hi - lo) * (len(BARS) - 1))
            return BARS[k]

        best = "".join(bar(t.best) for t in tail)
        own = "".join({"pruned": "×", "failed": "!"}.get(t.status) or bar(t.value) for t in tail)
        last = tail[-1].best
        shown = "—" if last is None else f"{last:.2f} dB"
        return [
            f"best so far {best} {shown}",
            f"each trial  {own} ({lo:.2f}..{hi:.2f} dB; × pruned, ! failed)",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler,
            "trials": self.trials,
            "asked": self.asked,
            "objective": self.objective,
            "prune": self.prune,
            "space": self.space,
            "best": None if self.best is None else self.best.to_json(),
            "curve": [t.to_json() for t in self.curve],
            "completed": self.completed,
            "pruned": self.pruned,
            "importances": self.importances,
            "importances_note": self.importances_note,
        }


def search_param(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def search_view(search: dict[str, Any], points: tuple[PointView, ...]) -> SearchView:
    from n2n_core.sweeps.search import MIN_IMPORTANCE_TRIALS

    ended = sorted(
        (p for p in points if p.trial is not None and p.status in ("finished", "pruned", "failed")),
        key=lambda p: p.trial,
    )
    curve, best, best_point = [], None, None
    for p in ended:
        if p.status == "finished" and p.value is not None and (best is None or p.value > best):
            best, best_point = p.value, p
        curve.append(TrialPoint(p.trial, p.index, p.status, p.value, best))
    completed = sum(t.status == "finished" and t.value is not None for t in curve)
    importances = search.get("importances")
    if not isinstance(importances, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) for k, v in importances.items()
    ):
        importances = None
    note = ""
    if importances is None:
        note = (
            f"importance: needs {MIN_IMPORTANCE_TRIALS} completed trials ({completed} so far)"
            if completed < MIN_IMPORTANCE_TRIALS
            else "importance: not computed yet"
        )
    space = search.get("space")
    return SearchView(
        sampler=str(search.get("sampler", "")),
        trials=int(search.get("trials", 0) or 0),
        asked=sum(p.trial is not None for p in points),
        objective=str(search.get("objective", "best_psnr")),
        prune=str(search.get("prune", "none")),
        space={str(k): str(v) for k, v in space.items()} if isinstance(space, dict) else {},
        best=best_point,
        curve=tuple(curve),
        importances=importances,
        importances_note=note,
    )


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
    search: SearchView | None = None

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def grid_keys(self) -> tuple[str, ...]:
        """The keys that vary between points: the grid's, or a search's space."""
        if self.search is not None:
            return tuple(self.search.space)
        return tuple(self.grid) + (("train.seed",) if self.seeds > 1 else ())

    @cached_property  # a view never changes; the TUI asks for each count on every redraw
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out

    @property
    def total(self) -> int:
        """The points to run: a search's trials count before they are asked."""
        return max(len(self.points), self.search.trials if self.search is not None else 0)

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
    def pruned(self) -> int:
        return self.counts.get("pruned", 0)

    @property
    def done(self) -> int:
        return self.finished + self.failed + self.pruned

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
            "search": None if self.search is None else self.search.to_json(),
        }


def _text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def view_of(
    sweep_dir: Path, sweep: Sweep, runs: Mapping[str, RunSummary | None], alive: bool
) -> SweepView:
    """The view of ``sweep``; ``runs``: the points' run summaries by folder name."""
    keys = tuple(sweep.grid) + (("train.seed",) if sweep.seeds > 1 else ())
    if sweep.search is not None and isinstance(sweep.search.get("space"), dict):
        keys = tuple(sweep.search["space"])
    points = []
    results_real = os.path.realpath(results_dir_of(sweep_dir))
    show = _text if sweep.search is None else search_param
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
                params_text=tuple(show(p.params.get(k, "")) for k in keys),
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
                trial=p.trial,
                value=p.value,
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
        search=None if sweep.search is None else search_view(sweep.search, tuple(points)),
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


def search_markdown(view: SweepView) -> str:
    """A search sweep as Markdown (``export --markdown SWEEP_DIR``): its best trial, every
    ended trial with the best so far, and the parameter importances."""
    sv = view.search
    if sv is None:
        return ""
    from n2n_core.runs.export import _md as esc

    keys = list(sv.space)
    out = [f"## Search {esc(view.name)}", "", esc(sv.header()), "", esc(sv.best_line()), ""]
    out += [
        "| trial | status | "
        + " | ".join(esc(k) for k in keys)
        + " | value (dB) | best so far (dB) |",
        "|---:|---|" + "---|" * len(keys) + "---:|---:|",
    ]
    by_index = {p.index: p for p in view.points}
    for t in sv.curve:
        params = by_index[t.index].params
        cells = [esc(search_param(params.get(k, ""))) for k in keys]
        value = "" if t.value is None else f"{t.value:.2f}"
        best = "" if t.best is None else f"{t.best:.2f}"
        out.append(f"| {t.trial} | {t.status} | " + " | ".join(cells) + f" | {value} | {best} |")
    out.append("")
    if sv.importances:
        out += ["| parameter | importance |", "|---|---:|"]
        out += [f"| {esc(k)} | {v:.2f} |" for k, v in sv.importances.items()]
    else:
        out.append(esc(sv.importances_note))
    return "\n".join(out) + "\n"


def expand_sweeps(paths: list[str]) -> tuple[list[str], str]:
    """``export``'s arguments with each sweep folder replaced by its points' run folders,
    and the Markdown of the searches among them (to print after the runs' table)."""
    out: list[str] = []
    sections: list[str] = []
    for path in paths:
        if not (Path(path) / SWEEP_FILE).is_file():
            out.append(path)
            continue
        view = read_view(path)
        out += [str(p.run_dir) for p in view.points if p.run_dir is not None and p.run_dir.is_dir()]
        if view.search is not None:
            sections.append(search_markdown(view))
    if not out:
        raise UserError(f"{paths[0]}: the sweep has no run folder yet")
    return out, "".join("\n" + s for s in sections)
