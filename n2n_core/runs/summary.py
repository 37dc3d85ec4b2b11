"""What a run folder adds up to for a list or a report: :class:`RunSummary`, and
replaying a run's records at their own pace."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from n2n_core import formatting as fmt
from n2n_core.runs.cache import SummaryCache
from n2n_core.runs.folders import RUN_DIR_RE, list_run_dirs
from n2n_core.runs.info import RunInfo, effective_status, read_run_info, run_tags, unreadable_status
from n2n_core.runs.query import run_val_level
from n2n_core.runs.records import (
    EvalRecord,
    Record,
)
from n2n_core.runs.state import RunValues, run_state


def _round(v: float | None) -> float | None:
    """Two decimals for JSON output; NaN/inf (not valid JSON) become null."""
    return None if v is None or not math.isfinite(v) else round(v, 2)


@dataclass(frozen=True)
class RunSummary:
    """One run as a list shows it: its run.json and what its records add up to."""

    path: Path
    run_id: int
    name: str
    status: str
    info: RunInfo | None = field(default=None, compare=False)
    values: RunValues = field(default_factory=RunValues, compare=False)
    # what a redraw depends on (values and info compared through these)
    step: int = 0
    best_psnr: float | None = None
    last_psnr: float | None = None
    input_psnr: float | None = None
    ms_per_step: float | None = None
    eval_psnr: float | None = None  # the best snapshot's mean over its cells at eval_level
    eval_noise: str | None = None  # the noise model and strength eval_psnr is at: the
    eval_level: float | None = None  # run's validation level unless asked for another
    colour_shift: float | None = None  # the last validation's mean |shift|, beside last_psnr
    colour_shift_worst: float | None = None
    info_json: str = ""

    @classmethod
    def of(
        cls,
        path: Path,
        info: RunInfo | None,
        values: RunValues,
        val_level: tuple[str, float] | None = None,
    ) -> RunSummary:
        """``val_level``: (noise, strength) the run validates at (:func:`run_val_level`);
        unknown, the one level its evaluations share, if they share one."""
        m = RUN_DIR_RE.match(path.name)
        if val_level is None:
            levels = values.eval_levels()
            val_level = levels[0] if len(levels) == 1 else None  # type: ignore[assignment]
        noise, level = val_level or (None, None)
        run_id, name = (int(m.group(1)), m.group(2)) if m else (-1, path.name)
        return cls(
            path=path,
            run_id=run_id,
            name=name,
            status=effective_status(info, path) if info is not None else unreadable_status(path),
            info=info,
            values=values,
            step=values.step,
            best_psnr=values.best_psnr,
            last_psnr=values.psnr,
            input_psnr=values.input_psnr,
            ms_per_step=values.ms_per_step,
            eval_psnr=values.eval_at(noise, level),
            eval_noise=noise,
            eval_level=level,
            colour_shift=values.colour_shift,
            colour_shift_worst=values.colour_shift_worst,
            info_json="" if info is None else json.dumps(info.to_json(), sort_keys=True),
        )

    @property
    def device(self) -> str:
        return (self.info and self.info.device) or "?"

    @property
    def world_size(self) -> int:
        return (self.info and self.info.world_size) or 1

    @property
    def precision(self) -> str:
        return (self.info and self.info.precision) or "?"

    @property
    def total_steps(self) -> int | None:
        return self.info.total_steps if self.info else None

    @property
    def started(self) -> float | None:
        return self.info.started if self.info else None

    @property
    def ended(self) -> float | None:
        return self.info.ended if self.info else None

    @property
    def exit_code(self) -> int | None:
        return self.info.exit_code if self.info else None

    @property
    def last_loss(self) -> float | None:
        return self.values.loss

    @property
    def evals(self) -> list[EvalRecord]:
        return self.values.evals

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "id": self.run_id,
            "name": self.name,
            "status": self.status,
            "device": self.device,
            "world_size": self.world_size,
            "precision": self.precision,
            "step": self.step,
            "total_steps": self.total_steps,
            "best_psnr": _round(self.best_psnr),
            "last_psnr": _round(self.last_psnr),
            "input_psnr": _round(self.input_psnr),
            "colour_shift": _round(self.colour_shift),
            "colour_shift_worst": _round(self.colour_shift_worst),
            "ms_per_step": _round(self.ms_per_step),
            "started": self.started,
            "ended": self.ended,
            "exit_code": self.exit_code,
            "tags": run_tags(self.info),
            "note": (self.info and self.info.note) or "",
            "sweep": self.info.sweep if self.info else None,
            "params": self.info.params if self.info else None,
            "eval_psnr": _round(self.eval_psnr),
            "eval_noise": self.eval_noise,
            "eval_level": self.eval_level,
            "eval": [e.to_json() for e in self.evals],
            "reason": self.reason,
        }

    @property
    def reason(self) -> str | None:
        """Why the run ended as it did, when run.json says or its processes show it."""
        if self.info is not None and self.info.reason:
            return self.info.reason
        if self.status == "interrupted":
            return "no process of the run is left and none recorded an end; resumable"
        return None

    def at_level(self, level: float | None) -> RunSummary:
        """This run with its Eval at noise strength ``level`` (its own noise model) instead;
        ``None``: as it is (the run's validation level)."""
        if level is None:
            return self
        noise = self.eval_noise or (self.values.eval_levels() or [(None, 0.0)])[0][0]
        return replace(
            self, eval_psnr=self.values.eval_at(noise, level), eval_noise=noise, eval_level=level
        )


def eval_heading(runs: list[RunSummary]) -> tuple[str, bool]:
    """What an Eval column's header says and whether each cell names its level: the one
    level of every score (``σ25``), or, when runs are scored at different levels, ``""``
    and ``True`` (a cell reads ``26.49 σ25``)."""
    levels = {fmt.noise_level(r.eval_noise, r.eval_level) for r in runs if r.eval_psnr is not None}
    if len(levels) > 1:
        return "", True
    return (levels.pop() if levels else ""), False


def eval_cell(r: RunSummary, per_cell: bool) -> str:
    """A run's Eval as the column shows it (:func:`eval_heading`)."""
    if r.eval_psnr is None or not per_cell:
        return fmt.psnr(r.eval_psnr)
    return f"{fmt.psnr(r.eval_psnr)} {fmt.noise_level(r.eval_noise, r.eval_level)}"


def summarize_run(run_dir: str | Path) -> RunSummary:
    path = Path(run_dir)
    return RunSummary.of(
        path, read_run_info(path), run_state(path).copy_values(), run_val_level(path)
    )


def list_runs(results_dir: str | Path, cache: bool = True) -> list[RunSummary]:
    """Every run folder, oldest first. Ended runs whose files have not changed since they
    were last listed come from the results folder's summary cache (:mod:`.cache`)."""
    if not cache:
        return [summarize_run(p) for p in list_run_dirs(results_dir)]
    store = SummaryCache(results_dir)
    dirs = list_run_dirs(results_dir)
    out = [RunSummary.of(p, *store.read_run(p)) for p in dirs]
    store.save(keep={p.name for p in dirs})
    return out


def replay_records(records: list[Record], speed: float, sleep=time.sleep) -> Iterator[Record]:
    """Yield records in order, paced by their ``time`` fields divided by ``speed``.

    ``speed <= 0`` yields everything at once (the final state).
    """
    if speed <= 0:
        yield from records
        return
    t0_log: float | None = None
    t0_wall = time.monotonic()
    for rec in records:
        t = rec.time
        if t is not None:
            if t0_log is None:
                t0_log = float(t)
            due = t0_wall + (float(t) - t0_log) / speed
            delay = due - time.monotonic()
            if delay > 0:
                sleep(min(delay, 5.0))
        yield rec
