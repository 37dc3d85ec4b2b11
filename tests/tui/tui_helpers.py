"""Helpers shared by the TUI tests (constants of the recorded fixtures, waiting)."""

from __future__ import annotations

import asyncio
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


async def ws_session(url: str, headers: dict[str, str], until: str = "", timeout: float = 60):
    """Open a websocket to ``n2n-tui --serve``: the handshake's refusal status, or
    (text received until ``until`` appears or ``timeout`` passes, close code)."""
    import aiohttp

    out = ""
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers=headers) as ws:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    try:
                        msg = await ws.receive(timeout=5)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        out += msg.data.decode("utf-8", "replace")
                    elif msg.type == aiohttp.WSMsgType.TEXT:
                        out += msg.data
                    else:
                        break
                    if until and until in out:
                        break
                return out, ws.close_code
    except aiohttp.WSServerHandshakeError as e:
        return e.status
