"""Rank-0 console output: rich on a terminal, plain lines elsewhere, always copied to log.txt."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console


class RunConsole:
    def __init__(self, log_path: Path | None, enabled: bool = True, quiet: bool = False):
        self.enabled = enabled
        self.quiet = quiet
        self.term = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self._log = open(log_path, "a", encoding="utf-8") if (log_path and enabled) else None  # noqa: SIM115

    @property
    def interactive(self) -> bool:
        return self.term.is_terminal

    def print(self, msg: str, style: str | None = None) -> None:
        if not self.enabled:
            return
        if not self.quiet:
            self.term.print(msg, style=style, markup=False)
        if self._log:
            self._log.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")
            self._log.flush()

    def close(self) -> None:
        if self._log and not self._log.closed:
            self._log.close()


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
