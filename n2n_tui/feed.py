"""What the dashboard knows about one run: metric series, current values, events, log tail.

A :class:`RunFeed` is filled from a background thread (a tail of ``metrics.jsonl``
or a replay) and read by the UI on a timer; a lock guards the hand-over and a
version counter tells the UI whether anything changed since it last drew.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n2n_core.runs import MetricsTail, parse_metric_line

from .series import Series

LOG_LINES = 400
# A pause this long between two records is a stop and resume, not training time.
RATE_GAP_S = 600.0


@dataclass
class FeedValues:
    """Current values, copied out under the lock for one redraw."""

    step: int = 0
    loss: float | None = None
    lr: float | None = None
    ms_per_step: float | None = None
    psnr: float | None = None
    best_psnr: float | None = None
    best_step: int | None = None
    input_psnr: float | None = None
    dataset: str | None = None
    first_time: float | None = None
    last_time: float | None = None
    records: int = 0
    val_records: int = 0
    events: list[str] = field(default_factory=list)
    # Where the wall-clock rate is measured from: validation and snapshot time
    # fall between train records, so this rate includes them.
    rate_step: int | None = None
    rate_time: float | None = None

    def remaining_s(self, total: int | None, now: float) -> float | None:
        """Wall seconds left: steps to go at the measured rate, less the time since the last record."""
        if not total or self.step >= total:
            return None
        per_step = None
        if self.rate_time is not None and self.last_time is not None and self.rate_step is not None:
            done = self.step - self.rate_step
            if done > 0 and self.last_time > self.rate_time:
                per_step = (self.last_time - self.rate_time) / done
        if per_step is None:
            if self.ms_per_step is None:
                return None
            per_step = self.ms_per_step / 1000.0
        left = (total - self.step) * per_step
        if self.last_time is not None and now > self.last_time:
            left -= now - self.last_time
        return max(left, 0.0)


class RunFeed:
    """Metric series and current values of one run, fed incrementally."""

    def __init__(self, capacity: int = 2048):
        self.lock = threading.Lock()
        self.capacity = capacity
        self.version = 0
        self._reset()

    def _reset(self) -> None:
        cap = self.capacity
        self.loss = Series(cap)
        self.lr = Series(cap)
        self.ms = Series(cap)
        self.psnr = Series(cap)
        self.input_psnr = Series(cap)
        self.values = FeedValues()
        self.events: deque[str] = deque(maxlen=LOG_LINES)

    def reset(self) -> None:
        with self.lock:
            self._reset()
            self.version += 1

    def ingest(self, records: Iterable[Any]) -> int:
        """Feed records (dicts; anything else is skipped). Returns how many were used."""
        n = 0
        with self.lock:
            v = self.values
            loss_add, lr_add, ms_add = self.loss.append, self.lr.append, self.ms.append
            step = v.step
            last_t = v.last_time
            for rec in records:
                if type(rec) is not dict:
                    continue
                kind = rec.get("kind")
                if kind not in ("train", "val", "event"):
                    # e.g. an eval record appended later by a validation: not training progress.
                    continue
                s = rec.get("step")
                if type(s) is not int:
                    s = step
                elif s > step:
                    step = s
                t = rec.get("time")
                if type(t) is float or type(t) is int:
                    if kind == "train" and (
                        v.rate_time is None or (last_t is not None and t - last_t > RATE_GAP_S)
                    ):
                        # The first step, or the first after a stop and resume: measure from here.
                        v.rate_step, v.rate_time = s, t
                    last_t = t
                    if v.first_time is None:
                        v.first_time = t
                if kind == "train":
                    x = rec.get("loss")
                    if type(x) is float or type(x) is int:
                        loss_add(s, x)
                        v.loss = x
                    x = rec.get("lr")
                    if type(x) is float or type(x) is int:
                        lr_add(s, x)
                        v.lr = x
                    x = rec.get("ms_per_step")
                    if type(x) is float or type(x) is int:
                        ms_add(s, x)
                        v.ms_per_step = x
                elif kind == "val":
                    v.val_records += 1
                    x = rec.get("psnr")
                    if type(x) is float or type(x) is int:
                        self.psnr.append(s, x)
                        v.psnr = x
                        if v.best_psnr is None or x > v.best_psnr:
                            v.best_psnr, v.best_step = x, s
                    x = rec.get("input_psnr")
                    if type(x) is float or type(x) is int:
                        self.input_psnr.append(s, x)
                        v.input_psnr = x
                    d = rec.get("dataset")
                    if isinstance(d, str):
                        v.dataset = d
                elif kind == "event":
                    level = rec.get("level", "info")
                    self.events.append(f"{s:>8} {level:<5} {rec.get('msg', '')}")
                else:
                    continue
                n += 1
            v.step = step
            v.last_time = last_t
            v.records += n
            if n:
                self.version += 1
        return n

    def copy_values(self) -> FeedValues:
        with self.lock:
            v = self.values
            out = FeedValues(**{k: getattr(v, k) for k in v.__dataclass_fields__})
            out.events = list(self.events)
            return out


def read_records(path: str | Path) -> list[Any]:
    """Every record of a finished metrics file, as fast as json allows.

    The whole file is parsed as one JSON array (one C call instead of a million);
    if any line is torn or garbage it falls back to line-by-line parsing that
    skips bad lines. Items may be non-dicts; :meth:`RunFeed.ingest` skips those.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    body = data.strip()
    if not body:
        return []
    try:
        return json.loads(b"[" + body.replace(b"\n", b",") + b"]")
    except (ValueError, UnicodeDecodeError):
        pass
    out = []
    for line in data.split(b"\n"):
        if line.strip():
            rec = parse_metric_line(line)
            if rec is not None:
                out.append(rec)
    return out


class LogTail:
    """The last lines of a growing text file (``log.txt``), partial line held back."""

    def __init__(self, path: str | Path, keep: int = LOG_LINES, chunk: int = 1 << 20):
        self.path = Path(path)
        self.lines: deque[str] = deque(maxlen=keep)
        self.offset = 0
        self._partial = b""
        self._chunk = chunk
        self.version = 0

    def poll(self) -> bool:
        try:
            size = self.path.stat().st_size
        except OSError:
            return False
        if size < self.offset:
            self.offset, self._partial = 0, b""
            self.lines.clear()
        if size == self.offset:
            return False
        if self.offset == 0 and size > self._chunk:  # only the end matters
            self.offset = size - self._chunk
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(size - self.offset)
        except OSError:
            return False
        self.offset += len(data)
        parts = (self._partial + data).split(b"\n")
        self._partial = parts.pop()
        for raw in parts:
            text = raw.decode("utf-8", "replace").rstrip("\r")
            self.lines.append(text.rsplit("\r", 1)[-1])
        self.version += 1
        return True


class MetricsFollower:
    """Tails ``metrics.jsonl`` into a :class:`RunFeed`, a bounded chunk at a time."""

    def __init__(self, path: str | Path, feed: RunFeed, chunk: int = 4 << 20):
        self.tail = MetricsTail(path)
        self.feed = feed
        self.chunk = chunk

    def poll(self) -> bool:
        """Ingest what is new; True when a full chunk was read (more may be waiting)."""
        before = self.tail.offset
        records = self.tail.read_new(max_bytes=self.chunk)
        if records:
            self.feed.ingest(records)
        return self.tail.offset - before >= self.chunk
