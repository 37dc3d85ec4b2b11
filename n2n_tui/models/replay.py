"""Replay of a recorded ``metrics.jsonl`` through a :class:`RunFollower`: pause, seek, speed.

The follower reads the file as it does for a live run (a rewrite under the
replay resets it); the player holds each record back until it is due and then
feeds it. Time in the log (the records' ``time`` fields) advances at ``speed``
times the wall clock. Seeking backwards rewinds the follower and rebuilds the
state from the start of the file at full speed up to the target; ``speed 0``
reads the whole file and feeds it at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from n2n_core.files.checks import is_regular_file
from n2n_core.runs.records import EvalRecord, Record, parse_record

from .follow import RunFollower


def log_time_span(path: Path) -> tuple[float | None, float | None]:
    """First and last ``time`` of the run in the file (reads only its head and tail).
    Evaluations recorded after training are not the run's time: they are left out."""

    def first_time(lines: list[bytes]) -> float | None:
        for line in lines:
            rec = parse_record(line) if line.strip() else None
            t = played_time(rec) if rec is not None else None
            if t is not None:
                return float(t)
        return None

    if not is_regular_file(path):
        return None, None
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except OSError:
        return None, None
    return first_time(head.split(b"\n")), first_time(tail.split(b"\n")[::-1])


TAIL_BYTES = 1 << 18  # where the last training record is looked for (evaluations follow it)


def played_time(rec: Record) -> float | None:
    """When a record is due in a replay: its time, or None (due at once, in file order) for
    an evaluation, which was measured later and is not part of the run's timeline."""
    return None if type(rec) is EvalRecord else rec.time


class ReplayPlayer:
    """Plays the metrics file of ``feed`` (a follower) into it on a thread; controls are
    thread-safe."""

    def __init__(self, feed: RunFollower, speed: float = 1.0):
        self.feed = feed
        self.path = feed.metrics_path
        self.speed = max(0.0, speed)
        self.paused = False
        self.done = False
        self.t0, self.t1 = log_time_span(self.path)
        self._cv = threading.Condition()
        self._stop = False
        self._log_now = self.t0 or 0.0  # the replay's position in log time
        self._anchor_wall = time.monotonic()
        self._anchor_log = self._log_now
        self._seek_to: float | None = None

    # -- controls (any thread) ---------------------------------------------------

    def position(self) -> float:
        """Current position in log time."""
        with self._cv:
            return self._now_locked()

    def _now_locked(self) -> float:
        if self.paused or self.speed <= 0 or self.done:
            return self._log_now
        return self._anchor_log + (time.monotonic() - self._anchor_wall) * self.speed

    def _reanchor(self) -> None:
        self._log_now = self._now_locked()
        self._anchor_wall, self._anchor_log = time.monotonic(), self._log_now

    def toggle_pause(self) -> None:
        with self._cv:
            self._reanchor()
            self.paused = not self.paused
            self._cv.notify_all()

    def set_speed(self, speed: float) -> None:
        with self._cv:
            self._reanchor()
            self.speed = max(0.0, speed)
            self._cv.notify_all()

    def seek(self, log_time: float) -> None:
        with self._cv:
            if self.t0 is not None and self.t1 is not None:
                log_time = min(max(log_time, self.t0), self.t1)
            self._seek_to = log_time
            self._cv.notify_all()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()

    # -- the thread ----------------------------------------------------------------

    def run(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        if self.speed <= 0:
            self._load_all()
            with self._cv:
                self.done = True
                self._log_now = self.t1 or self._log_now
                # The final state is shown; a seek starts playing from there.
                while self._seek_to is None:
                    if self._stop or cancelled():
                        return
                    self._cv.wait(0.5)
                if self.speed <= 0:
                    self.speed = 1.0
        self._play(cancelled)

    def _load_all(self) -> None:
        """The whole file fed in one go (a redraw sees nothing or everything)."""
        self.feed.load_whole()

    def _play(self, cancelled: Callable[[], bool]) -> None:
        pending: list[Record] = []
        eof = False
        while True:
            with self._cv:
                if self._stop or cancelled():
                    return
                if self._seek_to is not None:
                    target, self._seek_to = self._seek_to, None
                    if target < self._now_locked() or self.done:
                        self.feed.rewind()
                        pending, eof = [], False
                    self._log_now = self._anchor_log = target
                    self._anchor_wall = time.monotonic()
                    self.done = False
                now = self._now_locked()
            if not pending and not eof:
                # A file rewritten under the replay (a resume) resets the feed here.
                new = self.feed.poll(hold=True)
                pending = new.records
                if new.read:
                    continue
                eof = True
                # A last line without its newline still counts once the file ends.
                pending = self.feed.partial_records()
            # Feed everything due by `now`.
            i = 0
            for i, rec in enumerate(pending):  # noqa: B007
                t = played_time(rec)
                if t is not None and t > now:
                    break
            else:
                i = len(pending)
            if i:
                self.feed.ingest(pending[:i])
                del pending[:i]
            if not pending and eof:
                with self._cv:
                    self.done = True
                    self._log_now = self.t1 or now
                    self._cv.wait(0.5)
                continue
            if pending and i == 0:
                t = played_time(pending[0])
                with self._cv:
                    if self.paused:
                        self._cv.wait(0.5)
                    else:
                        wait = (t - self._now_locked()) / max(self.speed, 1e-9)
                        self._cv.wait(min(max(wait, 0.0), 0.1))
