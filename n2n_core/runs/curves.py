"""A run's curves: which metrics can be drawn, against step or wall time, and smoothing.

One home for "what is plotted how", shared by ``n2n-core export --plot`` and the
TUI's Compare screen: each metric names the record kind and field it comes from
and whether it reads best on a log scale (the loss spans decades).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from n2n_core.runs.records import Record

XAxis = Literal["step", "time"]
X_LABELS = {"step": "step", "time": "wall time (min)"}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # record kind in metrics.jsonl
    field: str
    label: str
    log: bool = False
    smooth: bool = False  # noisy per-step values: drawn with EMA smoothing
    companion: str | None = None  # drawn dashed on this metric's panel when asked


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("loss", "train", "loss", "training loss", log=True, smooth=True),
        Metric("psnr", "val", "psnr", "validation PSNR (dB)", companion="input_psnr"),
        Metric("lr", "train", "lr", "learning rate"),
        Metric("ms_per_step", "train", "ms_per_step", "ms / step", smooth=True),
        Metric("input_psnr", "val", "input_psnr", "noisy input PSNR (dB)"),
    )
}
# The metrics that get a panel of their own; the others ride on a panel as its companion.
PANELS = tuple(m for m in METRICS.values() if m.name not in {x.companion for x in METRICS.values()})

# Weight of the previous smoothed value: TensorBoard's default slider position.
EMA_WEIGHT = 0.6


def points(rec: Record, t0: float | None) -> Iterator[tuple[Metric, float, float | None, float]]:
    """(metric, step, minutes since ``t0``, value) of every metric one record carries."""
    step = rec.step
    if not _finite(step):
        return
    minutes = None if t0 is None else _minutes(rec.time, t0)
    for m in METRICS.values():
        if m.kind == rec.kind:
            y = getattr(rec, m.field, None)
            if _finite(y) and (not m.log or y > 0):
                yield m, float(step), minutes, float(y)


def curve(
    records: Iterable[Record], metric: str | Metric, x: XAxis = "step"
) -> tuple[list[float], list[float]]:
    """(xs, ys) of one metric; x is the step or the minutes since the run's first record."""
    m = METRICS[metric] if isinstance(metric, str) else metric
    xs: list[float] = []
    ys: list[float] = []
    t0: float | None = None
    for rec in records:
        if t0 is None and _finite(rec.time):
            t0 = float(rec.time)
        for pm, step, minutes, y in points(rec, t0):
            xv = step if x == "step" else minutes
            if pm == m and xv is not None:
                xs.append(xv)
                ys.append(y)
    return xs, ys


def ema(ys: list[float], weight: float = EMA_WEIGHT) -> list[float]:
    """Exponential moving average with bias correction (starts at the first value, not 0)."""
    out, acc, norm = [], 0.0, 0.0
    for y in ys:
        acc = acc * weight + (1.0 - weight) * y
        norm = norm * weight + (1.0 - weight)
        out.append(acc / norm)
    return out


def _minutes(t: Any, t0: float) -> float | None:
    return (float(t) - t0) / 60.0 if _finite(t) else None


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
