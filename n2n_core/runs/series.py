"""Bounded, self-downsampling series for charts.

A 500k-step run logs tens of thousands of points per metric; a chart is at most
a few hundred braille columns wide. :class:`Series` keeps every point until it
holds ``capacity`` of them, then merges neighbours pairwise (mean of y, last x)
and from then on averages ``stride`` raw points into one. Memory is bounded,
appends are O(1) amortised, and the whole history stays on the chart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class Series:
    __slots__ = ("capacity", "stride", "xs", "ys", "_acc_x", "_acc_y", "_acc_n", "count", "last")

    def __init__(self, capacity: int = 2048):
        if capacity < 4 or capacity % 2:
            raise ValueError("capacity must be an even number >= 4")
        self.capacity = capacity
        self.stride = 1
        self.xs: list[float] = []
        self.ys: list[float] = []
        self._acc_x = 0.0
        self._acc_y = 0.0
        self._acc_n = 0
        self.count = 0  # raw points seen
        self.last: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self.xs) + (1 if self._acc_n else 0)

    def clear(self) -> None:
        self.__init__(self.capacity)

    def append(self, x: float, y: float) -> None:
        if not math.isfinite(y):
            return
        self.count += 1
        self.last = (x, y)
        if self.stride == 1:
            self.xs.append(x)
            self.ys.append(y)
            if len(self.xs) >= self.capacity:
                self._compact()
            return
        self._acc_x = x
        self._acc_y += y
        self._acc_n += 1
        if self._acc_n >= self.stride:
            self.xs.append(x)
            self.ys.append(self._acc_y / self._acc_n)
            self._acc_y = 0.0
            self._acc_n = 0
            if len(self.xs) >= self.capacity:
                self._compact()

    def extend(self, points: Iterable[tuple[float, float]]) -> None:
        append = self.append
        for x, y in points:
            append(x, y)

    def _compact(self) -> None:
        xs, ys = self.xs, self.ys
        self.xs = xs[1::2]
        self.ys = [(a + b) * 0.5 for a, b in zip(ys[0::2], ys[1::2], strict=False)]
        self.stride *= 2

    def points(self) -> tuple[list[float], list[float]]:
        """Stored points plus the partly filled last bucket (so the newest value shows)."""
        if self._acc_n:
            return self.xs + [self._acc_x], self.ys + [self._acc_y / self._acc_n]
        return self.xs, self.ys
