"""Alerts: a run that finishes, fails, stops or loses its process tells the user wherever they are.

The app's run watcher sees every run folder, including runs started headless or
by another TUI, so :class:`AlertWatch` compares each scan's statuses with the
previous scan's and turns the transitions out of ``running`` into messages. The
first scan only records what is there: opening the TUI does not replay history.
What a row says about its run (its step, best PSNR, newest events) is what the
run list's :class:`~.follow.RunFollower` read; nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from n2n_core import formatting as fmt
from n2n_core.runs.info import RunInfo
from n2n_core.runs.summary import RunSummary

ENDED = ("finished", "failed", "stopped", "interrupted")


@dataclass(frozen=True)
class Alert:
    title: str
    message: str
    severity: str  # Textual's: information | warning | error


def last_error(row: RunSummary) -> str | None:
    """The newest error event among those the run's follower keeps."""
    for rec in reversed(row.values.events):
        if rec.level == "error":
            return rec.msg
    return None


def describe(row: RunSummary) -> Alert:
    """The alert for a run that has just ended."""
    where = row.name
    info = row.info or RunInfo()
    sweep = info.sweep
    if sweep:
        params = info.params
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
    # run.json's reason; runs written before it existed left an error event.
    error = info.reason or last_error(row) or ""
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

    def update(self, rows: Iterable[RunSummary]) -> list[Alert]:
        rows = list(rows)
        before = self._status
        self._status = {r.path.name: r.status for r in rows}
        if before is None:
            return []
        out = []
        for r in rows:
            old = before.get(r.path.name)
            # From running or queued, or new since the last scan and already over
            # (it failed fast): each counts once.
            if r.status in ENDED and old not in ENDED:
                out.append(describe(r))
        return out
