"""The run list: every run folder under the results dir, kept current at a cost that does
not grow with the runs that cannot change.

A run is *hot* while it can change by itself: it is running (here or on another
host), or one of its files changed in the last :data:`HOT_S` seconds. A hot run
has a :class:`RunFollower` (values only, no series) polled every scan, which
reads just the bytes appended since the last one; a rewritten metrics file (a
resume drops the records past its snapshot) resets it.

Every other run is *cold*: its row is kept as it was, its follower dropped, and
its ``run.json`` and ``metrics.jsonl`` are only stat'ed, a slice of the cold
runs per scan so that each is looked at once every :data:`COLD_ROUND_S` scans;
a change (a resume, a tag, an evaluation appended) makes it hot again. The
folder list itself is read again when the results folder changes (a run
created or deleted) and at least every :data:`RELIST_S` seconds.

The first scan takes ended runs from the results folder's summary cache
(:mod:`n2n_core.runs.cache`) and reads the others newest first, publishing as
it goes (:attr:`RunIndex.pending`); the cache is written back from the watcher
thread. So 10,000 finished runs cost a few hundred ``stat`` calls a second.
"""

from __future__ import annotations

import time
from pathlib import Path

from n2n_core.files.checks import change_stamp
from n2n_core.runs.cache import SummaryCache
from n2n_core.runs.folders import list_run_dirs
from n2n_core.runs.info import RunInfo, effective_status, read_run_info
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.summary import RunSummary, run_val_level

from .follow import CHUNK, RunFollower

HOT_S = 30.0  # a run whose files changed this recently is polled every scan
COLD_ROUND_S = 60  # scans in which every cold run is looked at once (30 s at 2 a second)
RELIST_S = 30.0  # the folder list is read again at least this often
SCAN_BUDGET_S = 0.4  # work one scan does on runs not yet read, before publishing
LIVENESS_S = 2.0  # how often a running run with nothing new is asked whether it still runs
SAVE_S = 60.0  # how often a changed summary cache is written back


class _Tracked:
    __slots__ = (
        "path",
        "follower",
        "info",
        "info_stamp",
        "row",
        "stamps",
        "changed",
        "version",
        "checked",
        "val_level",
        "level_read",
    )

    def __init__(self, path: Path):
        self.path = path
        self.follower: RunFollower | None = None
        self.info: RunInfo | None = None
        self.info_stamp: tuple[int, int] | None = None
        self.row: RunSummary | None = None
        self.stamps: tuple | None = None  # (run.json, metrics) file stamps while cold
        self.changed = float("-inf")  # monotonic time of the last change seen (none yet)
        self.version = -1  # the follower's version the row was made from
        self.checked = 0.0  # monotonic time the row's status was last worked out
        # The level its Eval is shown at: from preset.yaml, read once it is there.
        self.val_level: tuple[str, float] | None = None
        self.level_read = False

    def summary(self) -> RunSummary:
        """The row from the follower's values (a followed run)."""
        assert self.follower is not None
        if not self.level_read and self.info is not None:  # run.json comes after preset.yaml
            self.val_level, self.level_read = run_val_level(self.path), True
        return RunSummary.of(self.path, self.info, self.follower.copy_values(), self.val_level)


class RunIndex:
    """Tracks run folders; :meth:`scan` returns the current rows (oldest first) and sets
    :attr:`changed` when any row differs from the last scan's."""

    def __init__(self, results_dir: str | Path, chunk: int | None = CHUNK, cache: bool = True):
        self.results_dir = Path(results_dir)
        self.chunk = chunk
        self._runs: dict[Path, _Tracked] = {}
        self._dirs: list[Path] = []
        self._dirs_stamp: tuple[int, int] | None = None
        self._listed = 0.0
        self._cold_cursor = 0
        self._use_cache = cache
        self._cache: SummaryCache | None = None
        self._saved = 0.0
        self.pending = False  # True while some run is not read to its end
        self.unread = 0  # run folders not read yet (the first scans of a large folder)
        self.changed = True
        self._rows: list[RunSummary] | None = None

    def forget(self, path: Path) -> None:
        self._runs.pop(Path(path), None)
        self._dirs_stamp = None  # list again at the next scan

    def scan(self) -> list[RunSummary]:
        now = time.monotonic()
        changed = self._relist(now)
        cache = self._cache_now()
        self.pending = False
        budget_end = time.perf_counter() + SCAN_BUDGET_S
        unread = read_new = 0
        cold: list[_Tracked] = []
        # Newest first, so that a large first read shows the recent runs first.
        for d in reversed(self._dirs):
            t = self._runs.get(d)
            if t is None:
                # The budget counts runs read from their records; a cached one is cheap.
                if read_new and time.perf_counter() > budget_end:
                    unread += 1
                    continue
                t = self._runs[d] = _Tracked(d)
                changed = True
                if cache is not None and self._from_cache(t, cache):
                    continue
                read_new += 1
                self._heat(t, now)
            if t.follower is None:
                cold.append(t)
            else:
                changed = self._poll_hot(t, now, cache) or changed
        changed = self._poll_cold(cold, now) or changed
        self.unread = unread
        self.pending = self.pending or unread > 0
        self.changed = changed
        if cache is not None and cache.dirty and not unread and now - self._saved > SAVE_S:
            cache.save(keep={d.name for d in self._dirs})
            self._saved = now
        if changed or self._rows is None:
            runs = self._runs
            self._rows = [t.row for d in self._dirs if (t := runs.get(d)) and t.row is not None]
        return self._rows

    # -- the folder list -----------------------------------------------------------

    def _relist(self, now: float) -> bool:
        stamp = change_stamp(self.results_dir)
        if stamp == self._dirs_stamp and stamp is not None and now - self._listed < RELIST_S:
            return False
        self._dirs_stamp, self._listed = stamp, now
        dirs = list_run_dirs(self.results_dir)
        alive = set(dirs)
        gone = [p for p in self._runs if p not in alive]
        for p in gone:
            del self._runs[p]
        changed = bool(gone) or dirs != self._dirs
        self._dirs = dirs
        return changed

    def _cache_now(self) -> SummaryCache | None:
        if self._use_cache and self._cache is None:
            self._cache = SummaryCache(self.results_dir)
        return self._cache

    # -- hot runs: followed ---------------------------------------------------------

    def _heat(self, t: _Tracked, now: float, seen_changing: bool = False) -> None:
        """Follow a run: one read for the first time (an ended one goes cold again at once,
        its row cached), or a cold one whose files changed (followed for HOT_S at least)."""
        if t.follower is None:
            t.follower = RunFollower(t.path, capacity=None, chunk=self.chunk)
            t.version = -1
        t.stamps = None
        if seen_changing:
            t.changed = now

    def _poll_hot(self, t: _Tracked, now: float, cache: SummaryCache | None) -> bool:
        """Poll a followed run; whether its row changed (sets :attr:`pending`)."""
        assert t.follower is not None
        quiet = now - t.changed >= HOT_S
        # Stamps before reading (what the read is at least as new as), only where the run
        # may go cold after this poll: a running run pays for no stat it does not need.
        stamps = SummaryCache.stamps(t.path) if quiet else None
        first = t.version < 0
        info_changed = self._read_info(t)
        update = t.follower.poll()
        if not first and (info_changed or update.read or update.reset):
            t.changed = now
        old = t.row
        if info_changed or t.follower.version != t.version or t.row is None:
            t.version = t.follower.version
            t.row = t.summary()
            t.checked = now
        elif self._live(t) and now - t.checked >= LIVENESS_S:
            # Nothing was written, but a running run's process may have ended: its
            # status is asked again now and then (a lock probe), not every scan.
            t.checked = now
            status = effective_status(t.info, t.path)
            if status != t.row.status:
                t.row = t.summary()
        if old is not None and t.row is not old and t.row == old:
            t.row = old  # nothing shown changed: the same object, so nothing redraws
        if stamps is not None and not update.more and t.changed <= now - HOT_S:
            if t.row is not None and t.row.status != "running":
                self._cool(t, stamps, cache)
        self.pending = self.pending or update.more
        return t.row is not old

    def _live(self, t: _Tracked) -> bool:
        """Whether the row's status can change with no file changing (a process ending)."""
        return t.info is not None and t.info.status == "running"

    def _cool(self, t: _Tracked, stamps: tuple, cache: SummaryCache | None) -> None:
        # The follower has read the whole file as it was stamped: the row stands for it.
        follower = t.follower
        assert follower is not None and t.row is not None
        metrics = stamps[1]
        if metrics is not None and follower._metrics.offset != metrics[1]:
            return
        if cache is not None:
            cache.store(t.path, stamps, t.info, t.row.values, t.val_level)
        t.follower, t.stamps = None, stamps

    def _read_info(self, t: _Tracked) -> bool:
        stamp = change_stamp(RunPaths(t.path).run_json)
        if stamp == t.info_stamp:
            return False
        t.info_stamp = stamp
        t.info = read_run_info(t.path) if stamp else None
        return True

    # -- cold runs: stat'ed now and then ----------------------------------------------

    def _from_cache(self, t: _Tracked, cache: SummaryCache) -> bool:
        stamps = SummaryCache.stamps(t.path)
        hit = cache.lookup(t.path, stamps)
        if hit is None:
            return False
        t.info, values, t.val_level = hit
        t.level_read = True
        run_json = stamps[0]
        assert run_json is not None  # a hit has a run.json
        t.info_stamp = (run_json[2], run_json[1])  # change_stamp's (mtime, size)
        t.row = RunSummary.of(t.path, t.info, values, t.val_level)
        t.stamps = stamps
        return True

    def _poll_cold(self, cold: list[_Tracked], now: float) -> bool:
        if not cold:
            return False
        n = max(1, -(-len(cold) // COLD_ROUND_S))
        start = self._cold_cursor % len(cold)
        self._cold_cursor = start + n
        changed = False
        for t in (cold + cold)[start : start + min(n, len(cold))]:
            if SummaryCache.stamps(t.path) != t.stamps:
                self._heat(t, now, seen_changing=True)
                changed = self._poll_hot(t, now, self._cache) or changed
        return changed


def is_local(row: RunSummary) -> bool:
    """Whether the run's process lives on this machine (so it can be signalled)."""
    return row.info is None or row.info.on_this_host
