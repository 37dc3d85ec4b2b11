"""Run folders: numbering, the metrics log writer, summaries.

A run folder is self-describing (DESIGN.md)::

    results/00042-name/
      preset.yaml  run.json  metrics.jsonl  log.txt  snapshots/  samples/

Only rank 0 writes. ``metrics.jsonl`` gets one whole JSON object per line, each
written with a single ``write`` and flushed, so a crash tears at most the last
line; every reader skips torn and garbage lines. The records are typed
(``records.py``), ``run.json`` has its own model and writer (``runinfo.py``),
what records add up to is ``runstate.py``, following a growing file ``tail.py``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .errors import UserError
from .records import (
    EvalRecord,
    EventRecord,
    RankStats,
    Record,
    SysRecord,
    TrainRecord,
    ValRecord,
    read_metrics,
)
from .runinfo import RunInfo, effective_status, read_run_info, run_tags, unreadable_status
from .runstate import RunState, RunValues

RUN_DIR_RE = re.compile(r"^(\d{5})-(.+)$")
# Validation sample strips (noisy | denoised | clean) in samples/: ``step-00002000-<image>.png``.
SAMPLE_RE = re.compile(r"^step-(\d{8})-(.+)\.png$")


def sample_tag(step: int) -> str:
    return f"step-{step:08d}-"


def sample_files(samples_dir: str | Path) -> list[tuple[Path, int, str]]:
    """(path, step, image name) of the sample strips in a folder, by step then name."""
    d = Path(samples_dir)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = SAMPLE_RE.match(p.name)
        if m:
            out.append((p, int(m.group(1)), m.group(2)))
    return sorted(out, key=lambda t: (t[1], t[2]))


# ---------------------------------------------------------------------------
# run folders


def run_id_of(path: Path) -> int | None:
    m = RUN_DIR_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def allocate_run_dir(results_dir: str | Path, name: str) -> Path:
    """Create ``results_dir/NNNNN-name`` with the next id after the largest present.

    ``mkdir`` is atomic: two runs started at the same instant cannot get the same
    id, because the loser's ``mkdir`` fails and it takes the next number.
    """
    root = Path(results_dir)
    if root.exists() and not root.is_dir():
        raise UserError(f"{root}: results directory is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{root}: cannot create results directory ({e.strerror})") from None
    for _ in range(1000):
        try:
            ids = [i for i in (run_id_of(p) for p in root.iterdir()) if i is not None]
        except OSError as e:
            raise UserError(f"{root}: cannot read results directory ({e.strerror})") from None
        nxt = max(ids, default=-1) + 1
        path = root / f"{nxt:05d}-{name}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as e:  # read-only, immutable, full, quota
            raise UserError(
                f"{root}: cannot create a run folder in the results directory ({e.strerror})"
            ) from None
        # A different name with the same id may have been created concurrently.
        same = [p for p in root.iterdir() if run_id_of(p) == nxt and p != path]
        if same:
            path.rmdir()
            continue
        return path
    raise UserError(f"{root}: could not allocate a run id")


def list_run_dirs(results_dir: str | Path) -> list[Path]:
    root = Path(results_dir)
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and run_id_of(p) is not None]
    return sorted(dirs, key=lambda p: (run_id_of(p), p.name))


# ---------------------------------------------------------------------------
# metrics log


class MetricsWriter:
    """Appends one record per line and flushes it (rank 0 only); one method per kind."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.clock = clock
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self.broken = False

    def write(self, record: Record) -> None:
        """Append one record; the first failed write (disk full) raises, later ones are dropped.

        After a failed write the file may end in a torn line; appending more would
        glue the next record to it, so the writer stops instead.
        """
        if self.broken:
            return
        try:
            self._f.write(record.to_line())  # one write per line: a crash tears at most this line
            self._f.flush()
        except OSError:
            self.broken = True
            raise

    def train(self, step: int, loss: float, lr: float, ms_per_step: float) -> None:
        self.write(
            TrainRecord(
                step=step, time=self.clock(), loss=loss, lr=lr, ms_per_step=round(ms_per_step, 3)
            )
        )

    def val(
        self,
        step: int,
        psnr: float,
        input_psnr: float,
        dataset: str,
        images: int,
        colour: Mapping[str, Any] | None = None,
    ) -> None:
        """``colour``: the ``colour_shift*`` fields (``evaluate.ColourShift.to_json()``)."""
        self.write(
            ValRecord(
                step=step,
                time=self.clock(),
                psnr=round(psnr, 4),
                input_psnr=round(input_psnr, 4),
                dataset=dataset,
                images=images,
                **(colour or {}),
            )
        )

    def event(self, step: int, msg: str, level: str = "info") -> None:
        self.write(EventRecord(step=step, time=self.clock(), msg=msg, level=level))

    def sys(self, step: int, ranks: tuple[RankStats, ...]) -> None:
        self.write(SysRecord(step=step, time=self.clock(), ranks=ranks))

    def eval(
        self,
        step: int,
        snapshot: str,
        dataset: str,
        noise: str,
        level: float,
        psnr: float,
        input_psnr: float,
        images: int,
        baselines: dict[str, float],
        seconds: dict[str, float],
        best: bool,
        colour: Mapping[str, Any] | None = None,
    ) -> None:
        self.write(
            EvalRecord(
                step=step,
                time=self.clock(),
                snapshot=snapshot,
                dataset=dataset,
                noise=noise,
                level=float(level),
                psnr=round(psnr, 4),
                input_psnr=round(input_psnr, 4),
                images=images,
                baselines={k: round(v, 4) for k, v in baselines.items()},
                seconds={k: round(v, 3) for k, v in seconds.items()},
                best=best,
                **(colour or {}),
            )
        )

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:  # the buffered tail of a failed write: already reported
                pass

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# What a resumed run redoes; events stay, they are the run's history.
DROPPED_ON_RESUME = (TrainRecord, ValRecord, SysRecord)


def drop_metrics_after(path: str | Path, step: int) -> int:
    """Remove train/val/sys records past ``step`` (work lost in a crash); returns how many.

    Resuming from the snapshot at ``step`` redoes those steps, so their old records
    would otherwise appear twice. Events are kept: they are the run's history.
    Rewritten atomically (a new file: tails see another inode and start over);
    torn lines are dropped on the way.
    """
    p = Path(path)
    if not p.exists():
        return 0
    keep, dropped = [], 0
    for rec in read_metrics(p):
        if type(rec) in DROPPED_ON_RESUME and rec.step is not None and rec.step > step:
            dropped += 1
            continue
        keep.append(rec)
    atomic_write_text(p, "".join(r.to_line() for r in keep))
    return dropped


# ---------------------------------------------------------------------------
# summaries (what `n2n-core runs` and the TUI's run list show)


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
    eval_psnr: float | None = None  # the best snapshot's mean over its evaluation cells
    colour_shift: float | None = None  # the last validation's mean |shift|, beside last_psnr
    colour_shift_worst: float | None = None
    info_json: str = ""

    @classmethod
    def of(cls, path: Path, info: RunInfo | None, values: RunValues) -> RunSummary:
        m = RUN_DIR_RE.match(path.name)
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
            eval_psnr=values.eval_psnr,
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


def run_state(run_dir: str | Path, capacity: int | None = None) -> RunState:
    """The state of a run's whole metrics file, read once."""
    state = RunState(capacity)
    state.feed(read_metrics(Path(run_dir) / "metrics.jsonl"))
    return state


def summarize_run(run_dir: str | Path) -> RunSummary:
    path = Path(run_dir)
    return RunSummary.of(path, read_run_info(path), run_state(path).copy_values())


def list_runs(results_dir: str | Path) -> list[RunSummary]:
    return [summarize_run(p) for p in list_run_dirs(results_dir)]


def resolve_run_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: run folder not found")
    if not p.is_dir():
        raise UserError(f"{p}: not a run folder (expected a directory)")
    if not (p / "metrics.jsonl").exists() and not (p / "run.json").exists():
        raise UserError(f"{p}: not a run folder (no run.json or metrics.jsonl)")
    return p


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
