"""What the dashboard knows about one run: a :class:`RunState` shared with the UI, and the log tail.

A :class:`RunFeed` is filled from a background thread (a tail of ``metrics.jsonl``
or a replay) and read by the UI on a timer; a lock guards the hand-over and a
version counter tells the UI whether anything changed since it last drew. What
the records mean (last and best values, the series) is the engine's
:class:`RunState`; this module only adds the thread hand-over.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from n2n_core.runs.records import EventRecord, Record
from n2n_core.runs.state import EVENTS_KEPT, RunState, RunValues
from n2n_core.runs.tail import FileTail, MetricsTail

LOG_LINES = EVENTS_KEPT


def event_line(rec: EventRecord) -> str:
    step = "" if rec.step is None else rec.step
    return f"{step:>8} {rec.level or 'info':<5} {rec.msg or ''}"


class RunFeed:
    """One run's state, fed incrementally from another thread."""

    def __init__(self, capacity: int = 2048):
        self.lock = threading.Lock()
        self.state = RunState(capacity)
        self.version = 0

    @property
    def values(self) -> RunValues:
        """The live values (the feeding thread changes them; :meth:`copy_values` for a redraw)."""
        return self.state.values

    def reset(self) -> None:
        with self.lock:
            self.state.reset()
            self.version += 1

    def ingest(self, records: Iterable[Record], reset: bool = False) -> int:
        """Feed records (after forgetting everything when ``reset``); how many were used."""
        with self.lock:
            if reset:
                self.state.reset()
            n = self.state.feed(records)
            if n or reset:
                self.version += 1
        return n

    def copy_values(self) -> RunValues:
        with self.lock:
            return self.state.copy_values()


class LogTail:
    """The last lines of a growing text file (``log.txt``), partial line held back."""

    def __init__(self, path: str | Path, keep: int = LOG_LINES, chunk: int = 1 << 20):
        self.tail = FileTail(path, start_window=chunk)
        self.lines: deque[str] = deque(maxlen=keep)
        self.version = 0

    def poll(self) -> bool:
        reset, raw = self.tail.poll()
        if reset:
            self.lines.clear()
        for line in raw:
            text = line.decode("utf-8", "replace").rstrip("\r")
            self.lines.append(text.rsplit("\r", 1)[-1])
        if reset or raw:
            self.version += 1
            return True
        return False


class MetricsFollower:
    """Tails ``metrics.jsonl`` into a :class:`RunFeed`, a bounded chunk at a time."""

    def __init__(self, path: str | Path, feed: RunFeed, chunk: int = 4 << 20):
        self.tail = MetricsTail(path)
        self.feed = feed
        self.chunk = chunk

    def poll(self) -> bool:
        """Ingest what is new; True when a full chunk was read (more may be waiting)."""
        before = self.tail.offset
        reset, records = self.tail.read_new(max_bytes=self.chunk)
        if reset or records:
            self.feed.ingest(records, reset=reset)
        return self.tail.offset - before >= self.chunk
