"""Run folders: numbering, run.json, the metrics log (writer, reader, tail), summaries.

A run folder is self-describing (DESIGN.md)::

    results/00042-name/
      preset.yaml  run.json  metrics.jsonl  log.txt  snapshots/  samples/

Only rank 0 writes. ``metrics.jsonl`` gets one whole JSON object per line, each
written with a single ``write`` and flushed, so a crash tears at most the last
line; every reader here skips torn and garbage lines.
"""

from __future__ import annotations

import json
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
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{root}: cannot create results directory ({e.strerror})") from None
    for _ in range(1000):
        ids = [i for i in (run_id_of(p) for p in root.iterdir()) if i is not None]
        nxt = max(ids, default=-1) + 1
        path = root / f"{nxt:05d}-{name}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
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
    atomic_write_text(Path(run_dir) / "run.json", json.dumps(data, indent=2) + "\n")


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
    status = str(info.get("status", "unknown"))
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

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n"
        self._f.write(line)  # one write per line: a crash tears at most this line
        self._f.flush()

    def event(self, step: int, msg: str, level: str = "info") -> None:
        self.write({"kind": "event", "step": step, "time": time.time(), "msg": msg, "level": level})

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

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
    """Remove train/val/sys records past ``step`` (work lost in a crash); returns how many.

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
        if rec.get("kind") in ("train", "val", "sys") and isinstance(s, int) and s > step:
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
            "best_psnr": None if self.best_psnr is None else round(self.best_psnr, 2),
            "last_psnr": None if self.last_psnr is None else round(self.last_psnr, 2),
            "input_psnr": None if self.input_psnr is None else round(self.input_psnr, 2),
            "ms_per_step": None if self.ms_per_step is None else round(self.ms_per_step, 2),
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
                self.last_loss = _num(rec.get("loss"), self.last_loss)
                self.ms_per_step = _num(rec.get("ms_per_step"), self.ms_per_step)
                self.lr = _num(rec.get("lr"), self.lr)
            elif kind == "val":
                self.val_records += 1
                psnr = _num(rec.get("psnr"), None)
                if psnr is not None:
                    self.last_psnr = psnr
                    if self.best_psnr is None or psnr > self.best_psnr:
                        self.best_psnr = psnr
                self.input_psnr = _num(rec.get("input_psnr"), self.input_psnr)
            elif kind == "event":
                self.events += 1


def _num(v: Any, default: float | None) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return default
    return float(v)


def summarize_run(run_dir: str | Path) -> RunSummary:
    path = Path(run_dir)
    m = RUN_DIR_RE.match(path.name)
    run_id, name = (int(m.group(1)), m.group(2)) if m else (-1, path.name)
    info = read_run_json(path)
    agg = MetricsSummary()
    agg.feed(read_metrics(path / "metrics.jsonl"))
    s = RunSummary(path=path, run_id=run_id, name=name, status=effective_status(info))
    if info:
        s.info = info
        s.device = str(info.get("device", "?"))
        s.world_size = int(info.get("world_size", 1) or 1)
        s.precision = str(info.get("precision", "?"))
        s.total_steps = info.get("total_steps")
        s.started = info.get("started")
        s.ended = info.get("ended")
        s.exit_code = info.get("exit_code")
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
