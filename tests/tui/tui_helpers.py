"""Helpers shared by the TUI tests (constants of the recorded fixtures, waiting)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
T0 = 1_760_000_000.0
CLOCK = T0 + 3 * 3600.0  # the "now" of every test: ages and elapsed times are frozen
SIZE = (160, 48)


async def wait_for(pilot, cond: Callable[[], object], timeout: float = 10.0) -> None:
    """Let the app run until ``cond()`` is true (workers are threads; poll)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {cond}")
        await pilot.pause(0.05)
    await pilot.pause()


def text_of(widget) -> str:
    """The plain text a Static / Label currently shows."""
    r = widget.render()
    return getattr(r, "plain", None) or str(r)
