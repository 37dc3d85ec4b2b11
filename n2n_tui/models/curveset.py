"""What Compare knows about one run: the engine's :class:`RunState`, plus its curves by wall time.

Filled from a background thread (a tail of ``metrics.jsonl``) and read by the UI
on a timer, like :class:`feed.RunFeed`. The state gives the values, the
evaluation cells and every metric's series against step; which record field
makes which curve is the engine's :mod:`n2n_core.runs.curves`, used here for the
same metrics against the minutes since the run's first record.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from n2n_core.runs.curves import METRICS, points
from n2n_core.runs.records import Record
from n2n_core.runs.series import Series
from n2n_core.runs.state import RunState, RunValues


class RunCurves:
    def __init__(self, capacity: int = 1024):
        self.lock = threading.Lock()
        self.capacity = capacity
        self.version = 0
        self._reset()

    def _reset(self) -> None:
        self.state = RunState(self.capacity)
        self.by_time = {name: Series(self.capacity) for name in METRICS}
        self.t0: float | None = None

    def ingest(self, records: Sequence[Record], reset: bool = False) -> int:
        """Feed records (after forgetting everything when ``reset``); how many were used."""
        with self.lock:
            if reset:
                self._reset()
            n = self.state.feed(records)
            for rec in records:
                t = rec.time
                if self.t0 is None and t is not None and math.isfinite(t):
                    self.t0 = float(t)
                for m, _, minutes, y in points(rec, self.t0):
                    if minutes is not None:
                        self.by_time[m.name].append(minutes, y)
            if n or reset:
                self.version += 1
        return n

    @property
    def values(self) -> RunValues:
        """The live values (the feeding thread changes them; :meth:`copy_values` for a redraw)."""
        return self.state.values

    def curve(self, metric: str, x: str) -> tuple[list[float], list[float]]:
        with self.lock:
            series = self.by_time[metric] if x == "time" else self.state.series[metric]
            xs, ys = series.points()
            return list(xs), list(ys)

    def copy_values(self) -> RunValues:
        with self.lock:
            return self.state.copy_values()
