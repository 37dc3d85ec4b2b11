"""Running ``n2n-core`` as a user does: a subprocess, its exit status, stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
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


def assert_user_error(r: Result, *needles: str) -> None:
    """Exit 2, exactly one line on stderr starting with ``error:``, naming what was wrong."""
    assert r.code == 2, (r.code, r.out, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
