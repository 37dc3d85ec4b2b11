"""The run list: every run folder under the results dir, kept current cheaply.

Each scan lists the folder, re-reads a ``run.json`` only when it changed, and
polls one :class:`RunFollower` per run (values only, no series), which reads
just the bytes appended to its ``metrics.jsonl`` since the last scan; so a
results dir with hundreds of runs costs a few ``stat`` calls a second once it
has been read. A rewritten metrics file (a resume drops the records past its
snapshot) resets that run's state, so the list shows what ``n2n-core runs``
shows.
"""

from __future__ import annotations

from pathlib import Path

from n2n_core.files.checks import change_stamp
from n2n_core.runs.folders import list_run_dirs
from n2n_core.runs.info import RunInfo, read_run_info
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.summary import RunSummary, run_val_level

from .follow import CHUNK, RunFollower


class _Tracked:
    def __init__(self, path: Path, chunk: int | None):
        self.path = path
        self.follower = RunFollower(path, capacity=None, chunk=chunk)
        self.info_stamp: tuple[int, int] | None = None
        self.info: RunInfo | None = None
        # The level its Eval is shown at: from preset.yaml, read once it is there.
        self.val_level: tuple[str, float] | None = None
        self.level_read = False

    def summary(self) -> RunSummary:
        if not self.level_read and self.info is not None:  # run.json comes after preset.yaml
            self.val_level, self.level_read = run_val_level(self.path), True
        return RunSummary.of(self.path, self.info, self.follower.copy_values(), self.val_level)


class RunIndex:
    """Tracks run folders; :meth:`scan` returns the current rows (oldest first)."""

    def __init__(self, results_dir: str | Path, chunk: int | None = CHUNK):
        self.results_dir = Path(results_dir)
        self.chunk = chunk
        self._runs: dict[Path, _Tracked] = {}
        self.pending = False  # True while some metrics file is not read to its end

    def forget(self, path: Path) -> None:
        self._runs.pop(Path(path), None)

    def scan(self) -> list[RunSummary]:
        dirs = list_run_dirs(self.results_dir)
        alive = set(dirs)
        for gone in [p for p in self._runs if p not in alive]:
            del self._runs[gone]
        rows = []
        pending = False
        for d in dirs:
            t = self._runs.get(d)
            if t is None:
                t = self._runs[d] = _Tracked(d, self.chunk)
            stamp = change_stamp(RunPaths(d).run_json)
            if stamp != t.info_stamp:
                t.info_stamp = stamp
                t.info = read_run_info(d) if stamp else None
            pending = t.follower.poll().more or pending
            rows.append(t.summary())
        self.pending = pending
        return rows


def is_local(row: RunSummary) -> bool:
    """Whether the run's process lives on this machine (so it can be signalled)."""
    return row.info is None or row.info.on_this_host
