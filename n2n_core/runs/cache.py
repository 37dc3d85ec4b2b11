"""Summaries of ended runs kept beside them, so that a list of 10,000 runs reads no records.

One file per results folder, ``RESULTS/.n2n-summaries.json``: for each run
folder, the stamps (inode, size, modification and change time) its
``run.json`` and ``metrics.jsonl`` had when it was summarised, the run.json as
read, and what the records added up to (:class:`~n2n_core.runs.state.RunValues`
less the series, the sys sample and all events but the last errors).

It is derived data. An entry is used only while both stamps are exactly as
recorded, so a resume, an evaluation appended, a tag or a note reads the run
again; a run that is running is never stored; a file that is damaged, of
another version, a symlink or too large is ignored and rebuilt. Deleting it
costs one slow listing. It is written whole (a temporary file renamed over it)
and only when something changed; a results folder that cannot be written is
simply read in full each time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from n2n_core.errors import UserError
from n2n_core.files.atomic import atomic_write_bytes
from n2n_core.files.safe import open_own
from n2n_core.runs.info import RunInfo, read_run_info
from n2n_core.runs.layout import METRICS_FILE, RUN_JSON
from n2n_core.runs.query import run_val_level
from n2n_core.runs.records import (
    EvalRecord,
    EventRecord,
    field_spec,
    loads_json,
    parse_record,
    split_fields,
)
from n2n_core.runs.state import RunValues, run_state

CACHE_NAME = ".n2n-summaries.json"
VERSION = 2
MAX_BYTES = 256 << 20  # ~25 KB a run would be 10,000 runs; past this it is not ours
ERRORS_KEPT = 3  # error events kept (an alert quotes the last one)
# Statuses that change only when something writes run.json again (which changes its stamp).
ENDED = ("finished", "failed", "stopped")
_OBJECT_FIELDS = ("sys", "events", "evals")
_SCALARS = {k: v for k, v in field_spec(RunValues) if k not in _OBJECT_FIELDS}

Stamp = tuple[int, int, int, int]


def file_stamp(path: str | Path) -> Stamp | None:
    """(inode, size, mtime ns, ctime ns): any write, rename or truncation changes it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def values_to_json(v: RunValues) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(v, k) for k in _SCALARS}
    out["evals"] = [e.to_json() for e in v.evals]
    out["errors"] = [e.to_json() for e in v.events if e.level == "error"][-ERRORS_KEPT:]
    return out


def values_from_json(d: Any) -> RunValues | None:
    """The values back, or None when anything is not as :func:`values_to_json` wrote it."""
    if type(d) is not dict:
        return None
    scalars = {k: d[k] for k in _SCALARS if k in d}
    kwargs = split_fields(_SCALARS, scalars)
    evals, errors = d.get("evals"), d.get("errors")
    if "extra" in kwargs or type(evals) is not list or type(errors) is not list:
        return None
    v = RunValues(**kwargs)
    v.evals = [e for e in map(parse_record, evals) if type(e) is EvalRecord]
    v.events = [e for e in map(parse_record, errors) if type(e) is EventRecord]
    if len(v.evals) != len(evals) or len(v.events) != len(errors):
        return None
    return v


class SummaryCache:
    """The cache of one results folder: :meth:`lookup` before reading a run, :meth:`store`
    after, :meth:`save` once at the end (or now and then by a long-lived reader)."""

    def __init__(self, results_dir: str | Path):
        self.results_dir = Path(results_dir)
        self.path = self.results_dir / CACHE_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        self._load()

    def _load(self) -> None:
        try:
            fd = open_own(self.path, os.O_RDONLY, "a summary cache")
        except (OSError, UserError):
            return  # none yet, or not a plain file of ours: rebuilt
        with os.fdopen(fd, "rb") as f:
            try:
                data = f.read(MAX_BYTES + 1)
            except OSError:
                return
        if len(data) > MAX_BYTES:
            return
        try:
            doc = loads_json(data)
        except (ValueError, RecursionError):
            return
        if type(doc) is dict and doc.get("version") == VERSION and type(doc.get("runs")) is dict:
            self.entries = {k: e for k, e in doc["runs"].items() if type(e) is dict}

    @staticmethod
    def stamps(run_dir: Path) -> tuple[Stamp | None, Stamp | None]:
        # Joined as strings: called for every run of a listing, where Path costs the most.
        d = str(run_dir)
        return file_stamp(os.path.join(d, RUN_JSON)), file_stamp(os.path.join(d, METRICS_FILE))

    def lookup(
        self, run_dir: Path, stamps: tuple[Stamp | None, Stamp | None]
    ) -> tuple[RunInfo, RunValues, tuple[str, float] | None] | None:
        """The run's info, values and validation level (noise, strength; from its
        preset.yaml, which never changes) when its files are exactly as when stored."""
        e = self.entries.get(run_dir.name)
        if e is None or stamps[0] is None:
            return None
        if e.get("run_json") != list(stamps[0]) or e.get("metrics") != (
            None if stamps[1] is None else list(stamps[1])
        ):
            return None
        info = RunInfo.parse(e.get("info"))
        values = values_from_json(e.get("values"))
        if info is None or values is None or info.status not in ENDED:
            return None
        level = e.get("val_level")
        if level is not None:
            if not (
                type(level) is list
                and len(level) == 2
                and type(level[0]) is str
                and type(level[1]) in (int, float)
            ):
                return None
            level = (level[0], float(level[1]))
        return info, values, level

    def store(
        self,
        run_dir: Path,
        stamps: tuple[Stamp | None, Stamp | None],
        info: RunInfo | None,
        values: RunValues,
        val_level: tuple[str, float] | None = None,
    ) -> None:
        """Keep a run read from files whose stamps were taken before reading them (a file
        that changed while it was read then fails its next lookup, never the reverse)."""
        if info is None or stamps[0] is None or info.status not in ENDED:
            self.entries.pop(run_dir.name, None)
            return
        self.entries[run_dir.name] = {
            "run_json": list(stamps[0]),
            "metrics": None if stamps[1] is None else list(stamps[1]),
            "info": info.to_json(),
            "values": values_to_json(values),
            "val_level": None if val_level is None else list(val_level),
        }
        self.dirty = True

    def save(self, keep: set[str] | None = None) -> bool:
        """Write the cache when it changed (entries of folders not in ``keep`` dropped);
        False when it could not be written, which costs only speed."""
        if keep is not None:
            gone = [k for k in self.entries if k not in keep]
            for k in gone:
                del self.entries[k]
            self.dirty = self.dirty or bool(gone)
        if not self.dirty:
            return True
        doc = {"version": VERSION, "runs": self.entries}
        try:
            atomic_write_bytes(self.path, json.dumps(doc, separators=(",", ":")).encode())
        except (OSError, UserError):
            return False
        self.dirty = False
        return True

    def read_run(self, run_dir: Path) -> tuple[RunInfo | None, RunValues, tuple[str, float] | None]:
        """The run's info, values and validation level: from the cache when current,
        else read and stored."""
        stamps = self.stamps(run_dir)
        hit = self.lookup(run_dir, stamps)
        if hit is not None:
            return hit
        info = read_run_info(run_dir)
        values = run_state(run_dir).copy_values()
        level = run_val_level(run_dir)
        self.store(run_dir, stamps, info, values, level)
        return info, values, level
