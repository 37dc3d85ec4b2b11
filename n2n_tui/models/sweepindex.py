"""The sweep list: every sweep under ``RESULTS/sweeps`` with its points' progress,
as the engine's one view of a sweep (:class:`n2n_core.sweeps.view.SweepView`).

``sweep.json`` is re-read only when it changed; each point's step and PSNR come
from the run list the app already keeps current (its points are ordinary runs),
so following a sweep costs a ``stat`` and a lock probe per sweep.
"""

from __future__ import annotations

from pathlib import Path

from n2n_core.errors import UserError
from n2n_core.files.checks import change_stamp
from n2n_core.runs.summary import RunSummary
from n2n_core.sweeps.store import Sweep, list_sweep_dirs, read_sweep, scheduler_alive
from n2n_core.sweeps.view import SweepView, view_of


class SweepIndex:
    """Tracks sweep folders; :meth:`scan` returns one row per readable sweep (oldest first)."""

    def __init__(self, results_dir: str | Path):
        self.results_dir = Path(results_dir)
        self._sweeps: dict[Path, tuple[tuple[int, int] | None, Sweep | None]] = {}

    def scan(self, runs: list[RunSummary]) -> list[SweepView]:
        by_name = {r.path.name: r for r in runs}
        rows = []
        for d in list_sweep_dirs(self.results_dir):
            stamp = change_stamp(d / "sweep.json")
            old = self._sweeps.get(d)
            if old is None or old[0] != stamp:
                try:
                    sweep: Sweep | None = read_sweep(d)
                except UserError:
                    sweep = None  # half-written by hand, or another version: skipped
                self._sweeps[d] = (stamp, sweep)
            sweep = self._sweeps[d][1]
            if sweep is not None:
                rows.append(view_of(d, sweep, by_name, scheduler_alive(d)))
        return rows
