"""Following one run folder: its ``metrics.jsonl`` into a :class:`RunState`, and its ``log.txt``.

Every view of a run that grows holds one :class:`RunFollower` per run folder:
the dashboard (live, or a replay paced by :mod:`.replay`), Compare, the run
list and its alerts. A follower owns the tail of the metrics file (its offset,
and a reset when the file was rewritten: ``n2n-core resume`` drops the records
past its snapshot), the :class:`RunState` those records feed, and, when asked
for, the last lines of the run's log. :meth:`RunFollower.poll` reads what is
new, a bounded chunk at a time, and says what it found (:class:`Update`).

A follower is polled from a background thread (a ``@work`` worker, or the
app's run watcher) and read by the UI on a timer: a lock guards the hand-over
and ``version`` tells the UI whether anything changed since it last drew. What
the records mean (last and best values, the series) is the engine's
:class:`RunState`; how a growing file is read is :mod:`n2n_core.runs.tail`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n2n_core.runs.layout import RunPaths
from n2n_core.runs.records import EventRecord, Record, parse_lines
from n2n_core.runs.state import EVENTS_KEPT, RunState, RunValues
from n2n_core.runs.tail import FileTail, MetricsTail

CHUNK = 4 << 20  # metrics bytes one poll reads at most; a backlog takes several polls
LOG_WINDOW = 1 << 20  # the log is first read from this far before its end
LOG_LINES = EVENTS_KEPT


def event_line(rec: EventRecord) -> str:
    """An event as a log line (what the dashboard shows where there is no log.txt)."""
    step = "" if rec.step is None else rec.step
    return f"{step:>8} {rec.level or 'info':<5} {rec.msg or ''}"


@dataclass(frozen=True)
class Update:
    """What one :meth:`RunFollower.poll` found."""

    reset: bool = False  # the metrics file was rewritten: what was read before is forgotten
    # the new records in file order: typed when held (a replay reads their times), else
    # the decoded objects the state was fed (RunState reads them without typing each)
    records: list[Any] = field(default_factory=list)
    read: int = 0  # metrics bytes read (0: nothing new)
    more: bool = False  # a whole chunk was read: more may be waiting, poll again at once
    log_reset: bool = False  # log.txt was rewritten: the lines kept were dropped
    log_lines: list[str] = field(default_factory=list)  # new lines of log.txt


class RunFollower:
    """One run folder followed: its metrics into a :class:`RunState`, optionally its log.

    ``capacity``: points kept per chart series (``None`` keeps values only, as
    the run list does); ``log``: also keep the last lines of ``log.txt``;
    ``chunk``: metrics bytes one :meth:`poll` reads at most (``None``: all).
    """

    # Whether _feed needs typed records (a subclass that derives more from them); the
    # state alone reads decoded objects, faster.
    TYPED = False

    def __init__(
        self,
        run_dir: str | Path,
        capacity: int | None = 2048,
        *,
        log: bool = False,
        chunk: int | None = CHUNK,
    ):
        self.run_dir = Path(run_dir)
        self.chunk = chunk
        self.lock = threading.Lock()
        self.version = 0  # bumped whenever the state changes
        self.state = RunState(capacity)
        self._metrics = MetricsTail(self.metrics_path)
        self._log = FileTail(RunPaths(self.run_dir).log, start_window=LOG_WINDOW) if log else None
        self.log_lines: deque[str] = deque(maxlen=LOG_LINES)
        self.log_version = 0  # bumped whenever ``log_lines`` changes
        self.log_total = 0  # lines added since the log was last reset (a view appends the rest)
        self.log_resets = 0

    @property
    def metrics_path(self) -> Path:
        return RunPaths(self.run_dir).metrics

    # -- reading (the polling thread) ---------------------------------------------

    def poll(self, hold: bool = False) -> Update:
        """Read what is new; the records feed the state unless ``hold`` (the caller
        then feeds them with :meth:`ingest`, as a replay does when they are due).
        A rewritten file resets the state either way."""
        reset, records = self._metrics.read_new(max_bytes=self.chunk, typed=hold or self.TYPED)
        read = self._metrics.last_read
        if reset or (records and not hold):
            self.ingest(() if hold else records, reset=reset)
        log_reset, lines = self._poll_log()
        more = self.chunk is not None and read >= self.chunk
        return Update(reset, records, read, more, log_reset, lines)

    def _poll_log(self) -> tuple[bool, list[str]]:
        if self._log is None:
            return False, []
        reset, raw = self._log.poll()
        if reset:
            self.log_lines.clear()
            self.log_total = 0
            self.log_resets += 1
        # A progress bar redraws its line with \r: the line shows its last state.
        lines = [ln.decode("utf-8", "replace").rstrip("\r").rsplit("\r", 1)[-1] for ln in raw]
        self.log_lines.extend(lines)
        self.log_total += len(lines)
        if reset or lines:
            self.log_version += 1
        return reset, lines

    def partial_records(self) -> list[Record]:
        """The record on the last line read so far, which has no newline yet (a torn
        line gives none): a file that has ended still counts it."""
        return parse_lines([self._metrics.file.partial])

    def load_whole(self) -> None:
        """Read the whole metrics file and show its final state at once (a replay at speed
        0). The records feed a new state chunk by chunk, so memory is the state's (bounded
        series), not the file's; readers see the old state until the new one is whole."""
        tail = MetricsTail(self.metrics_path)
        state = RunState(self.state.capacity, self.state.events_kept)
        if self.TYPED:  # a subclass derives more from typed records: through its own feed
            self.rewind()
        while True:
            reset, items = tail.read_new(max_bytes=self.chunk or CHUNK, typed=self.TYPED)
            if not tail.last_read and not reset:
                break
            if self.TYPED:
                self.ingest(items, reset=reset)
            else:
                if reset:
                    state.reset()
                state.feed(items)
        # A last line without its newline still counts once the file ends.
        last = parse_lines([tail.file.partial])
        if self.TYPED:
            self.ingest(last)
            self._metrics = tail
            return
        state.feed(last)
        with self.lock:
            self.state, self._metrics = state, tail
            self.version += 1

    def rewind(self) -> None:
        """Read the metrics file again from its start, the state forgotten."""
        self._metrics = MetricsTail(self.metrics_path)
        self.ingest((), reset=True)

    # -- the state (any thread) ----------------------------------------------------

    def ingest(self, records: Sequence[Record], reset: bool = False) -> int:
        """Feed records (after forgetting everything when ``reset``); how many were used."""
        with self.lock:
            if reset:
                self._reset_state()
            n = self._feed(records)
            if n or reset:
                self.version += 1
        return n

    def _reset_state(self) -> None:
        """Forget what was fed (under the lock; a subclass forgets its own additions too)."""
        self.state.reset()

    def _feed(self, records: Sequence[Record]) -> int:
        """Feed the state (under the lock; a subclass may derive more from the records)."""
        return self.state.feed(records)

    @property
    def values(self) -> RunValues:
        """The live values (the polling thread changes them; :meth:`copy_values` for a redraw)."""
        return self.state.values

    def copy_values(self) -> RunValues:
        with self.lock:
            return self.state.copy_values()
