"""What Compare knows about one run: every metric's curve against step and wall time.

Filled from a background thread (a tail of ``metrics.jsonl``) and read by the UI
on a timer, like :class:`feed.RunFeed`; which record field makes which curve is
the engine's :mod:`n2n_core.curves`, and best / last values and the evaluation
cells come from the engine's aggregator.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

from n2n_core.curves import METRICS, points
from n2n_core.runs import MetricsSummary

from .series import Series


class RunCurves:
    def __init__(self, capacity: int = 1024):
        self.lock = threading.Lock()
        self.capacity = capacity
        self.version = 0
        self._reset()

    def _reset(self) -> None:
        self.series = {
            (name, x): Series(self.capacity) for name in METRICS for x in ("step", "time")
        }
        self.summary = MetricsSummary()
        self.t0: float | None = None
        self.records = 0

    def reset(self) -> None:
        with self.lock:
            self._reset()
            self.version += 1

    def ingest(self, records: Iterable[Any]) -> None:
        recs = [r for r in records if type(r) is dict]
        if not recs:
            return
        with self.lock:
            for rec in recs:
                t = rec.get("time")
                if self.t0 is None and isinstance(t, int | float) and math.isfinite(t):
                    self.t0 = float(t)
                for m, step, minutes, y in points(rec, self.t0):
                    self.series[(m.name, "step")].append(step, y)
                    if minutes is not None:
                        self.series[(m.name, "time")].append(minutes, y)
            self.summary.feed(recs)
            self.records += len(recs)
            self.version += 1

    def curve(self, metric: str, x: str) -> tuple[list[float], list[float]]:
        with self.lock:
            xs, ys = self.series[(metric, x)].points()
            return list(xs), list(ys)
