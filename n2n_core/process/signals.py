"""Signal -> stop: the one way a process of ours turns SIGINT/SIGTERM into a request to stop.

Every long-running process installs one :class:`StopFlag` and reads it from its
own loop: a training rank (the loop stops after the step under way, or at the
next step its peers agree on), the launcher (it forwards the stop to its
ranks), and the sweep schedulers (they stop their points). The handler only
records the request (and, for the launcher, passes it on); no work is done in
signal context.

Its own module, free of torch, so a rank can install it before anything slow:
a stop that arrives while the rank is still importing torch or joining its
peers is kept, not fatal -- the run then stops cleanly at its first agreed
step instead of dying half-started.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A scheduler also stops when its terminal goes away: its points are stopped cleanly.
SCHEDULER_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _exit_now() -> None:
    os._exit(130)


class StopFlag:
    """The first of ``signals`` -> ``requested`` (and ``signal_name``); a second SIGINT
    runs ``on_second_sigint`` (by default: exit at once, status 130).

    ``on_signal`` runs on every signal after the flag is set (the launcher passes
    the stop on to its ranks there). Use as a context manager, or
    :meth:`install` / :meth:`uninstall`.
    """

    def __init__(
        self,
        signals: tuple[int, ...] = STOP_SIGNALS,
        on_signal: Callable[[], None] | None = None,
        on_second_sigint: Callable[[], None] | None = _exit_now,
    ) -> None:
        self.signals = signals
        self.on_signal = on_signal
        self.on_second_sigint = on_second_sigint
        self.requested = False
        self.signal_name = ""
        self._old: dict[int, object] = {}

    def install(self) -> StopFlag:
        for sig in self.signals:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread (tests)
                pass
        return self

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def __enter__(self) -> StopFlag:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT and self.on_second_sigint is not None:
            self.on_second_sigint()
            return
        if not self.requested:
            self.requested = True
            self.signal_name = signal.Signals(signum).name
        if self.on_signal is not None:
            self.on_signal()
