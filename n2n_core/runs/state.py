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
from pathlib import Path
from typing import Any

from n2n_core.runs.layout import RunPaths
from n2n_core.runs.records import (
    EvalRecord,
    EventRecord,
    Record,
    SysRecord,
    TrainRecord,
    ValRecord,
    parse_record,
    plain_train,
    read_metrics,
)
from n2n_core.runs.series import Series

EVENTS_KEPT = 400
# A pause this long between two records is a stop and a later resume, not training time.
RATE_GAP_S = 600.0
# How the trainer's first event of each session begins (training/loop.py): the rate is
# measured again from the session's first step, so time spent stopped is not counted.
SESSION_STARTS = ("started", "resumed at step")
# ... and how it says a session ended (an error event ends one too): the time after
# is not training, even while a resume is still starting up.
SESSION_ENDS = ("stopped by", "finished in")


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
    # Where the wall-clock rate is measured from (the first train record, or the
    # first after a resume): validation and snapshot time fall between train
    # records, so this rate includes them.
    rate_step: int | None = None
    rate_time: float | None = None
    progress_time: float | None = None  # the newest train or val record's (not sys samples')
    # Time spent training: the sessions before the current one (each from its opening
    # event to its last train/val record or closing event), and the current one's
    # start, last progress and whether it has closed. A run stopped for a night and
    # resumed did not train that night.
    earlier_sessions_s: float = 0.0
    session_start: float | None = None
    session_end: float | None = None
    session_closed: bool = False
    sessions: int = 0  # training sessions begun: a stop and a resume make two

    def session_s(self) -> float:
        """The current session's length so far, by its records (0 before any)."""
        if self.session_start is None or self.session_end is None:
            return 0.0
        return max(self.session_end - self.session_start, 0.0)

    def elapsed_s(self, end: float) -> float | None:
        """Seconds of training up to ``end`` (now, or when the run ended), gaps left out;
        a session that has closed counts to its close, whatever ``end`` is."""
        if self.session_start is None:
            return None
        if self.session_closed:
            return self.earlier_sessions_s + self.session_s()
        return self.earlier_sessions_s + max(end - self.session_start, 0.0)

    def remaining_s(self, total: int | None, now: float) -> float | None:
        """Wall seconds left: steps to go at the measured rate, less the time since the last record."""
        if not total or self.step >= total:
            return None
        per_step = None
        last = self.progress_time
        if self.rate_step is not None and self.rate_time is not None and last is not None:
            done = self.step - self.rate_step
            if done > 0 and last > self.rate_time:
                per_step = (last - self.rate_time) / done
        if per_step is None:
            if self.ms_per_step is None:
                return None
            per_step = self.ms_per_step / 1000.0
        left = (total - self.step) * per_step
        if last is not None and now > last:
            # Counts down between records (a validation writes none for a while); a
            # silence longer than a stop-and-resume gap is a stall, not progress.
            left -= min(now - last, RATE_GAP_S)
        return max(left, 0.0)

    @property
    def eval_psnr(self) -> float | None:
        """The best snapshot's mean PSNR over all its evaluation cells, whatever their noise
        level (a matrix's own ranking); a run's "eval dB" is :meth:`eval_at` one level."""
        best = best_mean((e.snapshot, e.psnr) for e in self.evals if e.psnr is not None)
        return None if best is None else best[1]

    def eval_at(self, noise: str | None, level: float | None) -> float | None:
        """The best snapshot's mean PSNR over its cells at one noise level (``noise`` None:
        any model), so that two runs are compared like with like; None without such cells."""
        if level is None:
            return None
        best = best_mean(
            (e.snapshot, e.psnr)
            for e in self.evals
            if e.psnr is not None
            and e.level is not None
            and math.isclose(e.level, level, abs_tol=1e-9)
            and (noise is None or e.noise == noise)
        )
        return None if best is None else best[1]

    def eval_levels(self) -> list[tuple[str | None, float]]:
        """The (noise, level) pairs evaluated, weakest first."""
        found = {
            (e.noise, e.level) for e in self.evals if e.psnr is not None and e.level is not None
        }
        return sorted(found, key=lambda nl: (nl[0] or "", nl[1]))


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

    def feed(self, records: Iterable[Record | Any]) -> int:
        """Take in records in file order; returns how many were of a kind it reads.

        Items are typed records or the decoded JSON objects of lines
        (:func:`~n2n_core.runs.records.decode_lines`): a long log is read without
        building a record per line. A train object of the writer's own shape gives
        its numbers directly; of sys objects only the newest is typed, since only the
        newest is kept; anything else goes through the one parser.
        """
        v = self.values
        series = self.series
        if series is not None:
            loss_s, lr_s, ms_s = series["loss"], series["lr"], series["ms_per_step"]
            psnr_s, inp_s = series["psnr"], series["input_psnr"]
        step, last_t, n = v.step, v.last_time, 0
        newest_sys: dict | None = None
        for rec in records:
            cls = type(rec)
            if cls is dict:
                plain = plain_train(rec)
                if plain is not None:
                    s, t, loss, lr, ms = plain
                    cls = TrainRecord
                elif rec.get("kind") == "sys":
                    newest_sys = rec
                    s, t = rec.get("step"), rec.get("time")
                    s = s if type(s) is int else None
                    t = t if type(t) is float or type(t) is int else None
                    cls = SysRecord
                else:
                    rec = parse_record(rec)
                    cls = type(rec)
                    if rec is None:
                        continue
            elif not isinstance(rec, Record):
                continue  # a line that was no JSON object
            if cls is EvalRecord:
                # Measured after training (by validate or evaluate): not training
                # progress, so neither its step nor its time moves the run's clock.
                self.evals.pop(rec.key, None)  # a re-evaluated cell moves to the end
                self.evals[rec.key] = rec
                n += 1
                continue
            if type(rec) is not dict:
                s, t = rec.step, rec.time
                if cls is TrainRecord:
                    loss, lr, ms = rec.loss, rec.lr, rec.ms_per_step
            if s is None:
                s = step
            elif s > step:
                step = s
            if t is not None:
                if cls is TrainRecord and (
                    v.rate_time is None or (last_t is not None and t - last_t > RATE_GAP_S)
                ):
                    v.rate_step, v.rate_time = s, t
                if cls is TrainRecord or cls is ValRecord:
                    v.progress_time = t
                    if v.session_start is not None and not v.session_closed:
                        v.session_end = t
                last_t = t
                if v.first_time is None:
                    v.first_time = t
            if cls is TrainRecord:
                v.train_records += 1
                if loss is not None:
                    v.loss = loss
                    if series is not None:
                        loss_s.append(s, loss)
                if lr is not None:
                    v.lr = lr
                    if series is not None:
                        lr_s.append(s, lr)
                if ms is not None:
                    v.ms_per_step = ms
                    if series is not None:
                        ms_s.append(s, ms)
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
                msg = rec.msg or ""
                if msg.startswith(SESSION_STARTS):
                    v.sessions += 1
                    v.rate_step = v.rate_time = None
                    if t is not None:
                        v.earlier_sessions_s += v.session_s()
                        v.session_start, v.session_end, v.session_closed = t, t, False
                elif (
                    t is not None
                    and v.session_start is not None
                    and not v.session_closed
                    and (msg.startswith(SESSION_ENDS) or rec.level == "error")
                ):
                    v.session_end, v.session_closed = max(t, v.session_end or t), True
            elif cls is SysRecord:
                if type(rec) is dict:
                    newest_sys = rec
                else:
                    v.sys, newest_sys = rec, None
            else:
                continue
            n += 1
        if newest_sys is not None:
            v.sys = parse_record(newest_sys)  # type: ignore[assignment]
        v.step, v.last_time = step, last_t
        v.records += n
        return n

    def copy_values(self) -> RunValues:
        v = self.values
        out = RunValues(**{k: getattr(v, k) for k in v.__dataclass_fields__})
        out.events = list(self.events)
        out.evals = list(self.evals.values())
        return out


def run_state(run_dir: str | Path, capacity: int | None = None) -> RunState:
    """The state of a run's whole metrics file, read once."""
    state = RunState(capacity)
    state.feed(read_metrics(RunPaths(run_dir).metrics, typed=False))
    return state
