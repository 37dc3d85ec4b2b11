"""Rank-0 console output: a live rich progress bar on a terminal, plain lines elsewhere.

Every line printed also goes to the run's ``log.txt`` (with a timestamp), so a
run started headless on a cluster node reads the same as one watched live.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from n2n_core.files.safe import open_append


class RunConsole:
    def __init__(self, log_path: Path | None, enabled: bool = True):
        self.enabled = enabled
        self.term = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self._log = open_append(log_path, "the log") if (log_path and enabled) else None
        self._progress: Progress | None = None
        self._task = None

    @property
    def interactive(self) -> bool:
        return self.enabled and self.term.is_terminal

    def print(self, msg: str, style: str | None = None) -> None:
        if not self.enabled:
            return
        target = self._progress.console if self._progress else self.term
        target.print(msg, style=style, markup=False)
        self.log_only(msg)

    def log_only(self, msg: str) -> None:
        """Append to log.txt; a failed write (disk full) raises once, then the log is given up
        so that reporting the failure cannot fail the same way."""
        if self._log:
            try:
                self._log.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")
                self._log.flush()
            except OSError:
                self._drop_log()
                raise

    def _drop_log(self) -> None:
        log, self._log = self._log, None
        try:
            log.close()
        except OSError:
            pass

    # -- live progress (terminals only) ----------------------------------------

    def start_progress(self, total: int, done: int) -> None:
        if not self.interactive:
            return
        self._progress = Progress(
            TextColumn("[bold]step"),
            MofNCompleteColumn(),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[stats]}"),
            console=self.term,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("train", total=total, completed=done, stats="")
        self._progress.start()

    def update_progress(self, step: int, stats: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, stats=stats)

    def stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @property
    def live(self) -> bool:
        return self._progress is not None

    def close(self) -> None:
        self.stop_progress()
        if self._log and not self._log.closed:
            self._drop_log()
