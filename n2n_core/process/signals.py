"""A training process's stop request: SIGINT/SIGTERM set a flag the loop reads.

Its own module, free of torch, so a rank can install it before anything slow:
``n2n_core.training.rank`` does so first thing, and a stop that arrives while the rank
is still importing torch or joining its peers is kept, not fatal -- the run
then stops cleanly at its first agreed step instead of dying half-started.
"""

from __future__ import annotations

import os
import signal


class StopFlag:
    """SIGINT/SIGTERM -> graceful stop at the next agreed step; a second SIGINT exits now."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._old: dict[int, object] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread (tests)
                pass

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            os._exit(130)
        self.requested = True
        self.signal_name = signal.Signals(signum).name
