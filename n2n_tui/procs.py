"""Starting, stopping and calling ``n2n-core`` processes.

Runs are started detached (own session, no stdin, output to a file) so that
quitting the TUI never stops training; the TUI then follows the run folder like
any other. Stop is SIGTERM to the run's process group, then SIGKILL after a grace
period. Short commands (validate, freeze, infer) run to completion and return
their output.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STOP_GRACE_S = 20.0


def core_command() -> list[str]:
    """How to call ``n2n-core``: the script beside this Python, else on PATH."""
    beside = Path(sys.executable).with_name("n2n-core")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("n2n-core")
    if found:
        return [found]
    return [sys.executable, "-m", "n2n_core.cli"]


@dataclass
class LaunchSpec:
    """What the Launch screen collects; :meth:`argv` is the exact command started."""

    preset: Path
    name: str = ""
    nproc: int | None = None
    device: str | None = None
    precision: str | None = None
    overrides: list[str] = field(default_factory=list)
    results_dir: Path = Path("results")

    def args(self) -> list[str]:
        args = ["run", str(self.preset)]
        for o in self.overrides:
            args += ["--set", o]
        if self.precision:
            args += ["--set", f"runtime.precision={self.precision}"]
        if self.nproc:
            args += ["--nproc", str(self.nproc)]
        if self.device:
            args += ["--device", self.device]
        args += ["--results-dir", str(self.results_dir)]
        if self.name:
            args += ["--name", self.name]
        return args

    def display(self) -> str:
        return shlex.join(["n2n-core", *self.args()])


def split_overrides(text: str) -> list[str]:
    """``"train.steps=4 train.crop=32"`` -> ``["train.steps=4", "train.crop=32"]``."""
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = text.split()
    return [p for p in parts if p and p != "--set"]


@dataclass
class Started:
    proc: subprocess.Popen
    argv: list[str]
    output: Path
    started: float


def start_detached(args: list[str], output: Path, cwd: str | Path | None = None) -> Started:
    """Start ``n2n-core ARGS`` in its own session with output going to ``output``."""
    argv = core_command() + args
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Started(proc=proc, argv=argv, output=output, started=time.time())


def launch_log_path(results_dir: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(results_dir) / ".launches" / f"{stamp}-{name or 'run'}.log"


def tail_text(path: Path, lines: int = 12, limit: int = 64 << 10) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    return [t.rsplit("\r", 1)[-1] for t in text if t.strip()][-lines:]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def signal_run(pid: int, sig: int) -> str:
    """Send ``sig`` to the run's process group (just the pid if it shares ours)."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return "gone"
    if pgid != os.getpgid(0):
        os.killpg(pgid, sig)
        return "group"
    os.kill(pid, sig)
    return "pid"


def stop_run(pid: int, grace: float = STOP_GRACE_S, poll: float = 0.2) -> str:
    """SIGTERM the run's process group; SIGKILL it if still alive after ``grace`` seconds.

    Returns ``"stopped"``, ``"killed"`` or ``"not running"``. Blocking: call it from a worker.
    """
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return "not running"
    if signal_run(pid, signal.SIGTERM) == "gone":
        return "not running"
    deadline = time.monotonic() + grace
    own = pgid == os.getpgid(0)
    while time.monotonic() < deadline:
        if not _alive(pid) and (own or not _group_alive(pgid)):
            return "stopped"
        time.sleep(poll)
    try:
        if own:
            os.kill(pid, signal.SIGKILL)
        else:
            os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    return "killed"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@dataclass
class CoreResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_line(self) -> str:
        """The ``error: ...`` line, or the last lines of stderr, for a failed call."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        for ln in lines:
            if ln.startswith("error:"):
                return ln
        tail = "\n".join(lines[-6:])
        return tail or f"n2n-core exited with status {self.returncode}"

    def json(self) -> dict[str, Any] | None:
        for line in reversed(self.stdout.strip().splitlines()):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
        return None


def run_core(args: list[str], timeout: float | None = None) -> CoreResult:
    """Run ``n2n-core ARGS`` to completion (blocking: call it from a worker)."""
    argv = core_command() + args
    try:
        p = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
        )
    except FileNotFoundError as e:
        return CoreResult(argv, 127, "", f"error: cannot start n2n-core ({e.strerror})")
    except subprocess.TimeoutExpired:
        return CoreResult(argv, 124, "", f"error: n2n-core did not finish in {timeout:.0f}s")
    return CoreResult(argv, p.returncode, p.stdout, p.stderr)


def probe_devices(timeout: float = 60.0) -> dict[str, Any]:
    """``n2n-core devices --json``: the engine's own detection; {} when it cannot say."""
    return run_core(["devices", "--json"], timeout=timeout).json() or {}
