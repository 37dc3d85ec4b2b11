"""The one writer of ``metrics.jsonl`` (rank 0), and trimming it on resume.

Each record is one whole JSON line written with a single ``write`` and
flushed, so a crash tears at most the last line; every reader skips torn and
garbage lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from n2n_core.files.atomic import atomic_write_text
from n2n_core.files.safe import open_append
from n2n_core.runs.records import (
    EvalRecord,
    EventRecord,
    RankStats,
    Record,
    SysRecord,
    TrainRecord,
    ValRecord,
    read_metrics,
)


class MetricsWriter:
    """Appends one record per line and flushes it (rank 0 only); one method per kind."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.clock = clock
        self._f = open_append(self.path, "the metrics log")
        self.broken = False

    def write(self, record: Record) -> None:
        """Append one record; the first failed write (disk full) raises, later ones are dropped.

        After a failed write the file may end in a torn line; appending more would
        glue the next record to it, so the writer stops instead.
        """
        if self.broken:
            return
        try:
            self._f.write(record.to_line())  # one write per line: a crash tears at most this line
            self._f.flush()
        except OSError:
            self.broken = True
            raise

    def train(self, step: int, loss: float, lr: float, ms_per_step: float) -> None:
        self.write(
            TrainRecord(
                step=step, time=self.clock(), loss=loss, lr=lr, ms_per_step=round(ms_per_step, 3)
            )
        )

    def val(
        self,
        step: int,
        psnr: float,
        input_psnr: float,
        dataset: str,
        images: int,
        colour: Mapping[str, Any] | None = None,
    ) -> None:
        """``colour``: the ``colour_shift*`` fields (``evaluate.ColourShift.to_json()``)."""
        self.write(
            ValRecord(
                step=step,
                time=self.clock(),
                psnr=round(psnr, 4),
                input_psnr=round(input_psnr, 4),
                dataset=dataset,
                images=images,
                **(colour or {}),
            )
        )

    def event(self, step: int, msg: str, level: str = "info") -> None:
        self.write(EventRecord(step=step, time=self.clock(), msg=msg, level=level))

    def sys(self, step: int, ranks: tuple[RankStats, ...]) -> None:
        self.write(SysRecord(step=step, time=self.clock(), ranks=ranks))

    def eval(
        self,
        step: int,
        snapshot: str,
        dataset: str,
        noise: str,
        level: float,
        psnr: float,
        input_psnr: float,
        images: int,
        baselines: dict[str, float],
        seconds: dict[str, float],
        best: bool,
        colour: Mapping[str, Any] | None = None,
    ) -> None:
        self.write(
            EvalRecord(
                step=step,
                time=self.clock(),
                snapshot=snapshot,
                dataset=dataset,
                noise=noise,
                level=float(level),
                psnr=round(psnr, 4),
                input_psnr=round(input_psnr, 4),
                images=images,
                baselines={k: round(v, 4) for k, v in baselines.items()},
                seconds={k: round(v, 3) for k, v in seconds.items()},
                best=best,
                **(colour or {}),
            )
        )

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:  # the buffered tail of a failed write: already reported
                pass

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# What a resumed run redoes; events stay, they are the run's history.
DROPPED_ON_RESUME = (TrainRecord, ValRecord, SysRecord)


def drop_metrics_after(path: str | Path, step: int) -> int:
    """Remove train/val/sys records past ``step`` (work lost in a crash); returns how many.

    Resuming from the snapshot at ``step`` redoes those steps, so their old records
    would otherwise appear twice. Events are kept: they are the run's history.
    Rewritten atomically (a new file: tails see another inode and start over);
    torn lines are dropped on the way.
    """
    p = Path(path)
    if not p.exists():
        return 0
    keep, dropped = [], 0
    for rec in read_metrics(p):
        if type(rec) in DROPPED_ON_RESUME and rec.step is not None and rec.step > step:
            dropped += 1
            continue
        keep.append(rec)
    atomic_write_text(p, "".join(r.to_line() for r in keep))
    return dropped
