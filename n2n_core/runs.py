"""Run folders: numbering, run.json, the metrics log (writer, reader, tail), summaries.

A run folder is self-describing (DESIGN.md)::

    results/00042-name/
      preset.yaml  run.json  metrics.jsonl  log.txt  snapshots/  samples/

Only rank 0 writes. ``metrics.jsonl`` gets one whole JSON object per line, each
written with a single ``write`` and flushed, so a crash tears at most the last
line; every reader here skips torn and garbage lines.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

RUN_DIR_RE = re.compile(r"^(\d{5})-(.+)$")
STATUSES = ("running", "finished", "failed", "stopped")


# ---------------------------------------------------------------------------
# atomic files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_TEMP_RE = re.compile(r"^\..+\.tmp-(\d+)$")


def remove_orphan_temps(folder: Path) -> list[Path]:
    """Delete the temp files of :func:`atomic_write_bytes` left in ``folder`` by dead writers.

    Only names of our own pattern (``.NAME.tmp-PID``) whose PID no longer runs
    here: a live writer's temp file is never touched. Returns what was removed.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_RE.match(p.name)
        if not m or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        try:
            if p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


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


def read_run_json(run_dir: str | Path) -> dict[str, Any] | None:
    p = Path(run_dir) / "run.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_run_json(run_dir: str | Path, data: dict[str, Any]) -> None:
    p = Path(run_dir) / "run.json"
    text = json.dumps(data, indent=2) + "\n"
    try:
        atomic_write_text(p, text)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not p.is_file():
            raise
        # A full disk has no room for the temp file, but rewriting the few hundred
        # bytes of the old run.json in place needs no new blocks: the run's end
        # ("failed" and why) is recorded instead of staying "running" for good.
        with open(p, "r+b") as f:
            f.write(text.encode("utf-8"))
            f.truncate()
            f.flush()
            os.fsync(f.fileno())


def update_run_json(run_dir: str | Path, **changes: Any) -> dict[str, Any]:
    data = read_run_json(run_dir) or {}
    data.update(changes)
    write_run_json(run_dir, data)
    return data


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def effective_status(info: dict[str, Any] | None) -> str:
    """The status a person should see: a ``running`` run whose process is gone is ``interrupted``."""
    if not info:
        return "unknown"
    status = info.get("status")
    status = status if status in STATUSES else "unknown"
    if status == "running" and info.get("host") == socket.gethostname():
        if not pid_alive(info.get("pid")):
            return "interrupted"
    return status


# ---------------------------------------------------------------------------
# metrics log


class MetricsWriter:
    """Appends one JSON object per line and flushes it (rank 0 only)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self.broken = False

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; the first failed write (disk full) raises, later ones are dropped.

        After a failed write the file may end in a torn line; appending more would
        glue the next record to it, so the writer stops instead.
        """
        if self.broken:
            return
        line = json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n"
        try:
            self._f.write(line)  # one write per line: a crash tears at most this line
            self._f.flush()
        except OSError:
            self.broken = True
            raise

    def event(self, step: int, msg: str, level: str = "info") -> None:
        self.write({"kind": "event", "step": step, "time": time.time(), "msg": msg, "level": level})

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


def parse_metric_line(line: str | bytes) -> dict[str, Any] | None:
    """One record, or None for a blank, torn or garbage line."""
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str):
        return None
    return rec


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every valid record of a metrics file (a torn last line is skipped)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n"):
        if line:
            rec = parse_metric_line(line)
            if rec is not None:
                out.append(rec)
    return out


def drop_metrics_after(path: str | Path, step: int) -> int:
    """Remove train/val records past ``step`` (work lost in a crash); returns how many.

    Resuming from the snapshot at ``step`` redoes those steps, so their old records
    would otherwise appear twice. Events are kept: they are the run's history.
    Rewritten atomically; torn lines are dropped on the way.
    """
    p = Path(path)
    if not p.exists():
        return 0
    keep, dropped = [], 0
    for rec in read_metrics(p):
        s = rec.get("step")
        if rec.get("kind") in ("train", "val") and isinstance(s, int) and s > step:
            dropped += 1
            continue
        keep.append(rec)
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in keep)
    atomic_write_text(p, text)
    return dropped


class MetricsTail:
    """Follows a growing metrics.jsonl from a remembered offset.

    A partial last line is held back until its newline arrives (as toolong does),
    so a reader never sees half a record; a file that shrinks (rewritten) is read
    again from the start.
    """

    def __init__(self, path: str | Path, chunk: int = 1 << 20):
        self.path = Path(path)
        self.offset = 0
        self._partial = b""
        self._chunk = chunk

    def read_new(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:  # truncated / replaced
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        want = size - self.offset if max_bytes is None else min(size - self.offset, max_bytes)
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(want)
        except OSError:
            return []
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            if line:
                rec = parse_metric_line(line)
                if rec is not None:
                    out.append(rec)
        return out


# ---------------------------------------------------------------------------
# summaries (what `n2n-core runs` and the TUI's run list show)


@dataclass
class RunSummary:
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
    last_loss: float | None = None
    ms_per_step: float | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

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
            "best_psnr": _rounded(self.best_psnr),
            "last_psnr": _rounded(self.last_psnr),
            "input_psnr": _rounded(self.input_psnr),
            "ms_per_step": _rounded(self.ms_per_step),
            "started": self.started,
            "ended": self.ended,
            "exit_code": self.exit_code,
        }


class MetricsSummary:
    """Running aggregate of a metrics stream (fed incrementally by tails and replays)."""

    def __init__(self) -> None:
        self.step = 0
        self.best_psnr: float | None = None
        self.last_psnr: float | None = None
        self.input_psnr: float | None = None
        self.last_loss: float | None = None
        self.ms_per_step: float | None = None
        self.lr: float | None = None
        self.train_records = 0
        self.val_records = 0
        self.events = 0

    def feed(self, records: Iterable[dict[str, Any]]) -> None:
        for rec in records:
            kind = rec.get("kind")
            step = rec.get("step")
            if isinstance(step, int) and step > self.step:
                self.step = step
            if kind == "train":
                self.train_records += 1
                self.last_loss = num_or(rec.get("loss"), self.last_loss)
                self.ms_per_step = num_or(rec.get("ms_per_step"), self.ms_per_step)
                self.lr = num_or(rec.get("lr"), self.lr)
            elif kind == "val":
                self.val_records += 1
                psnr = num_or(rec.get("psnr"), None)
                if psnr is not None and math.isfinite(psnr):
                    self.last_psnr = psnr
                    if self.best_psnr is None or psnr > self.best_psnr:
                        self.best_psnr = psnr
                self.input_psnr = num_or(rec.get("input_psnr"), self.input_psnr)
            elif kind == "event":
                self.events += 1


def num_or(v: Any, default: float | None) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return default
    return float(v)


def _finite(v: Any) -> float | None:
    x = num_or(v, None)
    return x if x is not None and math.isfinite(x) else None


def _rounded(v: float | None) -> float | None:
    """Two decimals for JSON output; NaN/inf (not valid JSON) become null."""
    return None if v is None or not math.isfinite(v) else round(v, 2)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _text(v: Any, default: str) -> str:
    return v if isinstance(v, str) and v else default


def summarize_run(run_dir: str | Path) -> RunSummary:
    path = Path(run_dir)
    m = RUN_DIR_RE.match(path.name)
    run_id, name = (int(m.group(1)), m.group(2)) if m else (-1, path.name)
    info = read_run_json(path)
    agg = MetricsSummary()
    agg.feed(read_metrics(path / "metrics.jsonl"))
    s = RunSummary(path=path, run_id=run_id, name=name, status=effective_status(info))
    if info:
        # run.json is data a crash, an editor or another version may have damaged:
        # a field of the wrong type is shown as unknown, never trusted or raised on.
        s.info = info
        s.device = _text(info.get("device"), "?")
        s.world_size = _int(info.get("world_size")) or 1
        s.precision = _text(info.get("precision"), "?")
        s.total_steps = _int(info.get("total_steps"))
        s.started = _finite(info.get("started"))
        s.ended = _finite(info.get("ended"))
        s.exit_code = _int(info.get("exit_code"))
    s.step = agg.step
    s.best_psnr, s.last_psnr, s.input_psnr = agg.best_psnr, agg.last_psnr, agg.input_psnr
    s.last_loss, s.ms_per_step = agg.last_loss, agg.ms_per_step
    return s


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


def replay_records(
    records: list[dict[str, Any]], speed: float, sleep=time.sleep
) -> Iterator[dict[str, Any]]:
    """Yield records in order, paced by their ``time`` fields divided by ``speed``.

    ``speed <= 0`` yields everything at once (the final state).
    """
    if speed <= 0:
        yield from records
        return
    t0_log: float | None = None
    t0_wall = time.monotonic()
    for rec in records:
        t = rec.get("time")
        if isinstance(t, int | float):
            if t0_log is None:
                t0_log = float(t)
            due = t0_wall + (float(t) - t0_log) / speed
            delay = due - time.monotonic()
            if delay > 0:
                sleep(min(delay, 5.0))
        yield rec
