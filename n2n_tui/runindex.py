"""The run list: every run folder under the results dir, kept current cheaply.

Each scan lists the folder, re-reads a ``run.json`` only when it changed, and
reads only the bytes appended to each ``metrics.jsonl`` since the last scan (a
:class:`MetricsTail` per run), so a results dir with hundreds of runs costs a
few ``stat`` calls a second once it has been read.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n2n_core.runs import (
    MetricsSummary,
    MetricsTail,
    effective_status,
    list_run_dirs,
    read_run_json,
    run_id_of,
)


@dataclass(frozen=True)
class RunRow:
    """One line of the run list; equal rows need no redraw."""

    path: Path
    run_id: int
    name: str
    status: str
    device: str = "?"
    world_size: int = 1
    precision: str = "?"
    step: int = 0
    total_steps: int | None = None
    best_psnr: float | None = None
    last_psnr: float | None = None
    input_psnr: float | None = None
    ms_per_step: float | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    host: str | None = None
    pid: int | None = None
    has_run_json: bool = True
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        return self.path.name


def _stamp(p: Path) -> tuple[int, int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class _Tracked:
    def __init__(self, path: Path):
        self.path = path
        self.tail = MetricsTail(path / "metrics.jsonl")
        self.summary = MetricsSummary()
        self.info_stamp: tuple[int, int] | None = None
        self.info: dict[str, Any] | None = None


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _float_or_none(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


class RunIndex:
    """Tracks run folders; :meth:`scan` returns the current rows (oldest first)."""

    def __init__(self, results_dir: str | Path, chunk: int = 4 << 20):
        self.results_dir = Path(results_dir)
        self.chunk = chunk
        self._runs: dict[Path, _Tracked] = {}
        self.pending = False  # True while some metrics file is not read to its end

    def forget(self, path: Path) -> None:
        self._runs.pop(Path(path), None)

    def scan(self) -> list[RunRow]:
        dirs = list_run_dirs(self.results_dir)
        alive = set(dirs)
        for gone in [p for p in self._runs if p not in alive]:
            del self._runs[gone]
        rows = []
        pending = False
        for d in dirs:
            t = self._runs.get(d)
            if t is None:
                t = self._runs[d] = _Tracked(d)
            stamp = _stamp(d / "run.json")
            if stamp != t.info_stamp:
                t.info_stamp = stamp
                t.info = read_run_json(d) if stamp else None
            before = t.tail.offset
            recs = t.tail.read_new(max_bytes=self.chunk)
            if recs:
                t.summary.feed(recs)
            if t.tail.offset - before >= self.chunk:
                pending = True
            rows.append(self._row(t))
        self.pending = pending
        return rows

    def _row(self, t: _Tracked) -> RunRow:
        info = t.info or {}
        s = t.summary
        name = t.path.name.split("-", 1)[1] if "-" in t.path.name else t.path.name
        status = effective_status(t.info) if t.info else run_json_status(t.path)
        return RunRow(
            path=t.path,
            run_id=run_id_of(t.path) or 0,
            name=name,
            status=status,
            device=str(info.get("device", "?")),
            world_size=_int_or_none(info.get("world_size")) or 1,
            precision=str(info.get("precision", "?")),
            step=s.step,
            total_steps=_int_or_none(info.get("total_steps")),
            best_psnr=s.best_psnr,
            last_psnr=s.last_psnr,
            input_psnr=s.input_psnr,
            ms_per_step=s.ms_per_step,
            started=_float_or_none(info.get("started")),
            ended=_float_or_none(info.get("ended")),
            exit_code=_int_or_none(info.get("exit_code")),
            host=info.get("host") if isinstance(info.get("host"), str) else None,
            pid=_int_or_none(info.get("pid")),
            has_run_json=t.info is not None,
            info=dict(info),
        )


def run_json_status(run_dir: Path) -> str:
    """The status shown for a run whose run.json could not be read: missing or corrupt."""
    return "corrupt run.json" if (Path(run_dir) / "run.json").exists() else "no run.json"


def run_row(path: str | Path) -> RunRow:
    """A one-off row for a single run folder (reads its whole metrics file)."""
    idx = RunIndex(Path(path).parent, chunk=1 << 62)
    t = _Tracked(Path(path))
    t.info = read_run_json(path)
    t.summary.feed(t.tail.read_new())
    return idx._row(t)


def is_local(row: RunRow) -> bool:
    """Whether the run's process lives on this machine (so it can be signalled)."""
    return row.host is None or row.host == socket.gethostname()
