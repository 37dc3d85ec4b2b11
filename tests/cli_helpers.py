"""Running ``n2n-core`` and reading its exit status, stdout and stderr.

``n2n`` runs it as a user does: a separate process. ``n2n_in_process`` runs the
same ``main(argv)`` in the test's own process and gives the same ``Result``; it
saves the 1.5-3 s a fresh interpreter spends importing torch. Use it wherever
the process boundary is not what is tested: no signals, no process identity
(pids, locks held by another process, orphans), no environment that must be
set before torch loads, no timing of a real run.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str


def n2n(*args: str, cwd=None, timeout: float = 600, env=None) -> Result:
    e = dict(os.environ)
    e.pop("N2N_DEBUG", None)
    e.update(env or {})
    p = subprocess.run(
        [sys.executable, "-m", "n2n_core.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=e,
        stdin=subprocess.DEVNULL,
    )
    return Result(p.returncode, p.stdout, p.stderr)


class _TimedOut(BaseException):
    """Raised in the command by the timer: a BaseException, so ``main`` cannot take it for an error."""


# The warning filters of a fresh interpreter (python -W not given): what a user's
# terminal would show on stderr, not what pytest collects.
_FRESH_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, None),
    ("ignore", PendingDeprecationWarning, None),
    ("ignore", ImportWarning, None),
    ("ignore", ResourceWarning, None),
)
_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGALRM", "SIGPIPE", "SIGCHLD", "SIGUSR1")
    if hasattr(signal, name)
)


@contextlib.contextmanager
def _fd_to_file(fd: int):
    """Output written straight to ``fd`` (C libraries: onnxruntime, libgomp) into a file."""
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), fd)
        try:
            yield f
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def _read(f) -> str:
    f.seek(0)
    return f.read().decode("utf-8", errors="replace")


def n2n_in_process(*args: str, cwd=None, timeout: float = 600, env=None) -> Result:
    """``n2n(*args)``, run by ``n2n_core.cli.main.main`` in this process.

    Whatever the command changes for the process is put back afterwards: the
    environment (the CLI sets OpenMP variables before torch loads), the working
    directory, signal handlers, torch's thread count and the warning filters.
    A ``SystemExit`` becomes the exit status; a command still busy after
    ``timeout`` seconds fails the test instead of hanging it.
    """
    # torch first: an OpenMP setting the command makes before torch loads would otherwise
    # stay in this process's libgomp after the environment is put back.
    import torch

    from n2n_core.cli.main import main

    argv = [str(a) for a in args]
    environ = dict(os.environ)
    old_cwd = os.getcwd()
    handlers = {s: signal.getsignal(s) for s in _SIGNALS}
    threads = torch.get_num_threads()
    streams = sys.stdin, sys.stdout, sys.stderr
    out, err = io.StringIO(), io.StringIO()

    def timed_out(signum, frame):
        raise _TimedOut

    os.environ.pop("N2N_DEBUG", None)
    os.environ.update(env or {})
    try:
        if cwd is not None:
            os.chdir(cwd)
        for stream in streams[1:]:
            stream.flush()
        with (
            open(os.devnull) as devnull,
            _fd_to_file(1) as fd_out,
            _fd_to_file(2) as fd_err,
            warnings.catch_warnings(),
        ):
            warnings.resetwarnings()
            for action, category, module in reversed(_FRESH_FILTERS):
                warnings.filterwarnings(action, category=category, module=module or "")
            sys.stdin, sys.stdout, sys.stderr = devnull, out, err
            signal.signal(signal.SIGALRM, timed_out)
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                code = main(argv)
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
                    code = 1
            except _TimedOut:
                code = None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                sys.stdin, sys.stdout, sys.stderr = streams
            result = Result(code, out.getvalue() + _read(fd_out), err.getvalue() + _read(fd_err))
    finally:
        os.chdir(old_cwd)
        for s, h in handlers.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(environ)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    if result.code is None:
        raise AssertionError(f"n2n-core {' '.join(argv)}: still running after {timeout} s")
    return result


def assert_user_error(r: Result, *needles: str) -> None:
    """Exit 2, exactly one line on stderr starting with ``error:``, naming what was wrong."""
    assert r.code == 2, (r.code, r.out, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def wait_for(pred, proc, timeout: float = 120.0, poll: float = 0.02) -> bool:
    """Poll ``pred`` until it holds, ``proc`` ends (then its last answer) or ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return pred()
        time.sleep(poll)
    return False
