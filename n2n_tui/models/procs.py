"""Starting, stopping and calling ``n2n-core`` processes.

Runs are started detached (own session, no stdin, output to a file) so that
quitting the TUI never stops training; the TUI then follows the run folder like
any other. Short commands (validate, freeze, infer) run to completion and
return their output. Stopping a run is not here: the dashboard calls the
engine's :mod:`n2n_core.runs.stop` (SIGTERM, then SIGKILL after a grace
period that allows for the run's step time, only to processes proven to be
the run's), so this module stays clear of the training package.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n2n_core.files.safe import open_append


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
    grid: list[str] = field(default_factory=list)  # KEY=V1,V2 items: start a sweep
    queue: bool = False  # wait for free devices (a one-point sweep) instead of starting now

    @property
    def is_sweep(self) -> bool:
        return bool(self.grid) or self.queue

    def args(self) -> list[str]:
        if self.is_sweep:
            return self._sweep_args()
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

    def _sweep_args(self) -> list[str]:
        # `sweep` takes runtime settings as --set, like any preset key.
        args = ["sweep", str(self.preset)]
        for g in self.grid:
            args += ["--grid", g]
        sets = list(self.overrides)
        if self.precision:
            sets.append(f"runtime.precision={self.precision}")
        if self.nproc:
            sets.append(f"runtime.nproc={self.nproc}")
        if self.device:
            sets.append(f"runtime.device={self.device}")
        for o in sets:
            args += ["--set", o]
        args += ["--results-dir", str(self.results_dir)]
        if self.name:
            args += ["--name", self.name]
        return args + ["--detach"]

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
    with open_append(output, "the process's output", binary=True) as out:
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
