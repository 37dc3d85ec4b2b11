"""Processes that die with the one that launched them.

torchrun starts each rank in a session of its own: a signal to the launcher's
group never reaches the ranks, and when the launcher dies they are re-parented
and would train on. Two guards, both cheap:

- Linux: ``PR_SET_PDEATHSIG`` -- the kernel SIGKILLs a process the moment its
  parent exits, however it exited. The launcher sets it in torchrun's agent
  (before exec); each rank sets it at start. SIGKILL, so a rank writes nothing
  after its launcher is gone.
- Everywhere: a daemon thread in each rank that ends the process when the
  launcher named in its environment (pid and start time) is gone or its parent
  changed; it closes the start-up race and covers systems without ``prctl``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from n2n_core.process.identity import identity_of

PR_SET_PDEATHSIG = 1
LAUNCHER_ENV = "N2N_LAUNCHER"  # "PID:START" of the process a rank must not outlive
WATCH_INTERVAL_S = 0.5
ORPHAN_EXIT = 137  # as if SIGKILLed: the rank did not choose to stop


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux)."""
    libc = _libc()
    return libc is not None and libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def dies_with(parent_pid: int, sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` for ``Popen``: the child gets ``sig`` when ``parent_pid`` exits
    (SIGKILL; a sweep's points get SIGTERM, so they stop with a snapshot).

    ctypes is loaded here, before the fork; the child only makes the call.
    """
    libc = _libc()

    def preexec() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the call above
            os._exit(ORPHAN_EXIT)

    return preexec


def launcher_env(pid: int | None = None) -> str:
    """The value of :data:`LAUNCHER_ENV` that names this process (or ``pid``)."""
    ident = identity_of(os.getpid() if pid is None else pid)
    start = "" if ident is None else repr(ident.start)
    return f"{os.getpid() if pid is None else pid}:{start}"


def _launcher_alive(spec: str) -> bool:
    pid_text, _, start_text = spec.partition(":")
    try:
        pid = int(pid_text)
        start = float(start_text) if start_text else None
    except ValueError:
        return True  # nothing to watch
    ident = identity_of(pid)
    return ident is not None and (start is None or ident.start == start)


def die_with_launcher(env: dict[str, str] | None = None) -> None:
    """Make this rank end at once when its parent or its launcher is gone."""
    env = os.environ if env is None else env
    parent = os.getppid()
    set_parent_death_signal(signal.SIGKILL)
    spec = env.get(LAUNCHER_ENV, "")
    if os.getppid() != parent or (spec and not _launcher_alive(spec)):
        os._exit(ORPHAN_EXIT)

    def watch() -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            if os.getppid() != parent or (spec and not _launcher_alive(spec)):
                os._exit(ORPHAN_EXIT)

    threading.Thread(target=watch, name="n2n-lifeline", daemon=True).start()
