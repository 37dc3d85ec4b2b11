"""What a run's records add up to: the one place that knows "last step" or "best PSNR".

``n2n-core runs``, ``replay``, the report, the TensorBoard export and the TUI
(run index, dashboard, snapshot list) all feed records into a :class:`RunState`
and read its values. It is fed incrementally (tails, replays); when the file
behind it was rewritten the reader calls :meth:`RunState.reset` and feeds the
new content, so every view agrees with a fresh read of the file.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .records import EvalRecord, EventRecord, Record, SysRecord, TrainRecord, ValRecord
from .series import Series

EVENTS_KEPT = 400


@dataclass
class RunValues:
    """The current values of a run (a copy: safe to hand to another thread)."""

    step: int = 0
    loss: float | None = None
    lr: float | None = None
    ms_per_step: float | None = None
    psnr: float | None = None  # the last validation's
    best_psnr: float | None = None
    best_step: int | None = None
    input_psnr: float | None = None
    dataset: str | None = None
    colour_shift: float | None = None  # the last validation's mean |shift|, levels of 255
    colour_shift_worst: float | None = None  # ... and its worst signed (image, channel) shift
    first_time: float | None = None
    last_time: float | None = None
    records: int = 0
    train_records: int = 0
    val_records: int = 0
    sys: SysRecord | None = None  # the newest system/accelerator sample
    events: list[EventRecord] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)  # the latest of each cell

    @property
    def eval_psnr(self) -> float | None:
        """The best snapshot's mean PSNR over its evaluation cells (a run's "eval dB")."""
        best = best_mean((e.snapshot, e.psnr) for e in self.evals if e.psnr is not None)
        return None if best is None else best[1]


def best_mean(scores: Iterable[tuple[Any, float]]) -> tuple[Any, float] | None:
    """(key, mean) of the key whose scores have the highest mean: the best snapshot of an
    evaluation is the one with the best mean PSNR over its cells. None without scores."""
    by: dict[Any, list[float]] = {}
    for key, score in scores:
        by.setdefault(key, []).append(score)
    means = {k: sum(v) / len(v) for k, v in by.items()}
    return max(means.items(), key=lambda kv: kv[1], default=None)


class RunState:
    """Running aggregate of one run's records.

    ``capacity``: points kept per chart series (:class:`Series` downsamples past
    it); ``None`` keeps no series, for views that need only the values (the run
    list holds one state per run folder).
    """

    def __init__(self, capacity: int | None = 2048, events: int = EVENTS_KEPT):
        self.capacity = capacity
        self.events_kept = events
        self.reset()

    def reset(self) -> None:
        self.values = RunValues()
        self.events: deque[EventRecord] = deque(maxlen=self.events_kept)
        self.val_psnr: dict[int, float] = {}  # step -> PSNR: what a snapshot at that step scored
        self.evals: dict[tuple, EvalRecord] = {}
        cap = self.capacity
        self.series: dict[str, Series] | None = (
            None
            if cap is None
            else {k: Series(cap) for k in ("loss", "lr", "ms_per_step", "psnr", "input_psnr")}
        )

    def feed(self, records: Iterable[Record]) -> int:
        """Take in records in file order; returns how many were of a kind it reads."""
        v = self.values
        series = self.series
        if series is not None:
            loss_s, lr_s, ms_s = series["loss"], series["lr"], series["ms_per_step"]
            psnr_s, inp_s = series["psnr"], series["input_psnr"]
        step, last_t, n = v.step, v.last_time, 0
        for rec in records:
            s = rec.step
            if s is None:
                s = step
            elif s > step:
                step = s
            t = rec.time
            if t is not None:
                last_t = t
                if v.first_time is None:
                    v.first_time = t
            cls = type(rec)
            if cls is TrainRecord:
                v.train_records += 1
                if rec.loss is not None:
                    v.loss = rec.loss
                    if series is not None:
                        loss_s.append(s, rec.loss)
                if rec.lr is not None:
                    v.lr = rec.lr
                    if series is not None:
                        lr_s.append(s, rec.lr)
                if rec.ms_per_step is not None:
                    v.ms_per_step = rec.ms_per_step
                    if series is not None:
                        ms_s.append(s, rec.ms_per_step)
            elif cls is ValRecord:
                v.val_records += 1
                x = rec.psnr
                if x is not None and math.isfinite(x):  # a NaN score is no score
                    v.psnr = x
                    self.val_psnr[s] = x
                    if series is not None:
                        psnr_s.append(s, x)
                    if v.best_psnr is None or x > v.best_psnr:
                        v.best_psnr, v.best_step = x, s
                if rec.input_psnr is not None:
                    v.input_psnr = rec.input_psnr
                    if series is not None:
                        inp_s.append(s, rec.input_psnr)
                if rec.dataset is not None:
                    v.dataset = rec.dataset
                if rec.colour_shift is not None:
                    v.colour_shift = rec.colour_shift
                    v.colour_shift_worst = rec.colour_shift_worst
            elif cls is EventRecord:
                self.events.append(rec)
            elif cls is SysRecord:
                v.sys = rec
            elif cls is EvalRecord:
                self.evals.pop(rec.key, None)  # a re-evaluated cell moves to the end
                self.evals[rec.key] = rec
            else:
                continue
            n += 1
        v.step, v.last_time = step, last_t
        v.records += n
        return n

    def copy_values(self) -> RunValues:
        v = self.values
        out = RunValues(**{k: getattr(v, k) for k in v.__dataclass_fields__})
        out.events = list(self.events)
        out.evals = list(self.evals.values())
        return out
