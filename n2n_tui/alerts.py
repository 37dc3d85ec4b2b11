"""Alerts: a run that finishes, fails, stops or loses its process tells the user wherever they are.

The app's run watcher sees every run folder, including runs started headless or
by another TUI, so :class:`AlertWatch` compares each scan's statuses with the
previous scan's and turns the transitions out of ``running`` into messages. The
first scan only records what is there: opening the TUI does not replay history.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from n2n_core.runs import parse_metric_line

from . import formatting as fmt
from .runindex import RunRow

TAIL_BYTES = 64 * 1024
ENDED = ("finished", "failed", "stopped", "interrupted")


@dataclass(frozen=True)
class Alert:
    title: str
    message: str
    severity: str  # Textual's: information | warning | error


def last_error(run_dir: Path) -> str | None:
    """The newest error event of a run (the end of its metrics.jsonl only)."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines):
        rec = parse_metric_line(line) if line.strip() else None
        if rec and rec.get("kind") == "event" and rec.get("level") == "error":
            msg = rec.get("msg")
            return msg if isinstance(msg, str) else None
    return None


def describe(row: RunRow) -> Alert:
    """The alert for a run that has just ended."""
    where = row.name
    sweep = row.info.get("sweep")
    if sweep:
        params = row.info.get("params")
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, dict) else ""
        where = f"sweep {sweep} point {row.name}" + (f" ({shown})" if shown else "")
    step = f"step {row.step:,}"
    if row.status == "finished":
        psnr = f", best PSNR {fmt.psnr(row.best_psnr)} dB" if row.best_psnr is not None else ""
        return Alert("Run finished", f"{where} finished at {step}{psnr}", "information")
    if row.status == "stopped":
        return Alert("Run stopped", f"{where} stopped at {step}; r resumes it", "warning")
    if row.status == "interrupted":
        return Alert("Run lost", f"{where}: its process is gone at {step}", "error")
    error = last_error(row.path) or ""
    if "non-finite loss" in error:
        return Alert("Run failed", f"{where}: non-finite loss at {step}; run stopped", "error")
    code = f" (exit code {row.exit_code})" if row.exit_code is not None else ""
    detail = f": {error}" if error else ""
    title = "Sweep point failed" if sweep else "Run failed"
    return Alert(title, f"{where} failed at {step}{code}{detail}", "error")


class AlertWatch:
    """Remembers each run's status between scans; reports the runs that just ended."""

    def __init__(self) -> None:
        self._status: dict[str, str] | None = None

    def update(self, rows: Iterable[RunRow]) -> list[Alert]:
        rows = list(rows)
        before = self._status
        self._status = {r.key: r.status for r in rows}
        if before is None:
            return []
        out = []
        for r in rows:
            old = before.get(r.key)
            # A run new since the last scan that has already ended failed fast (or
            # finished quickly): it counts too.
            if r.status in ENDED and old != r.status and (old is None or old == "running"):
                out.append(describe(r))
        return out
