"""What Compare knows about one run: a :class:`RunFollower`, plus its curves by wall time.

The follower's state gives the values, the evaluation cells and every metric's
series against step; which record field makes which curve is the engine's
:mod:`n2n_core.runs.curves`, used here for the same metrics against the
minutes since the run's first record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from n2n_core.runs.curves import METRICS, points
from n2n_core.runs.records import Record
from n2n_core.runs.series import Series

from .follow import RunFollower


class RunCurves(RunFollower):
    TYPED = True  # the curves by time are made from typed records

    def __init__(self, run_dir: str | Path, capacity: int = 1024):
        super().__init__(run_dir, capacity)
        self._reset_time()

    def _reset_time(self) -> None:
        self.by_time = {name: Series(self.state.capacity) for name in METRICS}
        self.t0: float | None = None

    def _reset_state(self) -> None:
        super()._reset_state()
        self._reset_time()

    def _feed(self, records: Sequence[Record]) -> int:
        n = super()._feed(records)
        for rec in records:
            t = rec.time
            if self.t0 is None and t is not None and math.isfinite(t):
                self.t0 = float(t)
            for m, _, minutes, y in points(rec, self.t0):
                if minutes is not None:
                    self.by_time[m.name].append(minutes, y)
        return n

    def curve(self, metric: str, x: str) -> tuple[list[float], list[float]]:
        with self.lock:
            series = self.by_time[metric] if x == "time" else self.state.series[metric]
            xs, ys = series.points()
            return list(xs), list(ys)
