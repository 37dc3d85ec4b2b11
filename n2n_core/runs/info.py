"""``run.json``: the typed model, its tolerant parser, and its one writer.

Every change to a run's ``run.json`` (``prepare_run``, the training worker,
the torchrun launcher, ``resume``) goes through :func:`update_run_info`: it
reads the file, applies the changes and replaces the file atomically while it
holds a lock on the run folder, so two writers never lose each other's fields.
A new field is one more attribute of :class:`RunInfo`. Fields this version does
not know, and values of the wrong type, are kept as they were.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from n2n_core.errors import UserError
from n2n_core.files.atomic import atomic_write_text
from n2n_core.files.checks import is_regular_file
from n2n_core.process.identity import pid_alive, run_alive
from n2n_core.process.locks import folder_locked
from n2n_core.runs.layout import RUN_JSON
from n2n_core.runs.records import field_spec, merged_json, split_fields

STATUSES = ("queued", "running", "finished", "failed", "stopped")


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """What ``run.json`` says about a run (the field names of docs/ARCHITECTURE.md)."""

    _spec: ClassVar[tuple[tuple[str, tuple[type, ...]], ...]] = ()
    _accept: ClassVar[dict[str, tuple[type, ...]]] = {}

    status: str | None = None  # queued | running | finished | failed | stopped
    name: str | None = None
    pid: int | None = None
    host: str | None = None
    command: list[str] | None = None
    device: str | None = None
    world_size: int | None = None
    precision: str | None = None
    total_steps: int | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    tags: list[str] | None = None  # n2n-core tag
    note: str | None = None  # n2n-core note
    sweep: str | None = None  # a sweep's point: "sweeps/NNNNN-name", relative to the results dir
    params: dict[str, Any] | None = None  # a sweep's point: its grid values by preset key
    # What proves a live process is this run (process.identity): the launcher's identity,
    # and every rank's of a torchrun run (recorded by rank 0).
    process: dict | None = None
    ranks: list | None = None
    # Why a run failed (or a stop could not be saved, or no rank was left to say), one line.
    reason: str | None = None
    # What produced the run (runs/provenance.py): code, versions, host, knobs, data, torch.
    provenance: dict[str, Any] | None = None
    rerun_of: str | None = None  # n2n-core rerun: the run folder it reran
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, data: Any) -> RunInfo | None:
        """The model of a decoded ``run.json``; None when it is not a JSON object."""
        if not isinstance(data, dict):
            return None
        return cls(**split_fields(cls._accept, data))

    def to_json(self) -> dict[str, Any]:
        return merged_json(self, {}, keep_none=True)

    @property
    def on_this_host(self) -> bool:
        return self.host is None or self.host == socket.gethostname()


RunInfo._spec = field_spec(RunInfo)
RunInfo._accept = dict(RunInfo._spec)


def read_run_info(run_dir: str | Path) -> RunInfo | None:
    """The run's ``run.json``; None when it is missing, unreadable or not an object."""
    if not is_regular_file(Path(run_dir) / RUN_JSON):
        return None
    try:
        data = json.loads((Path(run_dir) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):  # nested too deep: corrupt
        return None
    return RunInfo.parse(data)


def update_run_info(
    run_dir: str | Path, edit: Callable[[RunInfo], dict[str, Any]] | None = None, **changes: Any
) -> RunInfo:
    """Apply ``changes`` (field=value) to the run's ``run.json``; the only writer of it.

    ``edit`` computes more changes from the current model while the lock is held
    (a change that depends on the old value, such as adding a tag).
    """
    run_dir = Path(run_dir)
    with folder_locked(run_dir):
        info = read_run_info(run_dir) or RunInfo()
        if edit is not None:
            changes = {**changes, **edit(info)}
        # A field set here replaces any unreadable raw value kept for it.
        extra = {k: v for k, v in info.extra.items() if k not in changes}
        info = dataclasses.replace(info, **changes, extra=extra)
        _write(run_dir / RUN_JSON, json.dumps(info.to_json(), indent=2) + "\n")
    return info


def _write(p: Path, text: str) -> None:
    try:
        atomic_write_text(p, text)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not p.is_file():
            raise
        # A full disk has no room for the temp file, but rewriting the few hundred
        # bytes of the old run.json in place needs no new blocks: the run's end
        # ("failed" and why) is recorded instead of staying "running" for good.
        with open(p, "r+b") as f:
            f.write(text.encode("utf-8"))
            f.truncate()
            f.flush()
            os.fsync(f.fileno())


def unreadable_status(run_dir: str | Path) -> str:
    """The status of a run whose run.json could not be read: it is missing, or corrupt."""
    return "corrupt run.json" if (Path(run_dir) / RUN_JSON).exists() else "no run.json"


def effective_status(
    info: RunInfo | None, run_dir: str | Path | None = None, lock_ours: bool = False
) -> str:
    """The status a person should see: a ``running`` run with no process left is ``interrupted``.

    With ``run_dir`` the answer comes from the run folder's lock and the recorded
    process identities (:func:`n2n_core.process.identity.run_alive`); without it, from the bare pid.
    ``lock_ours``: the caller holds the run folder's lock (so that lock proves nothing).
    """
    if info is None:
        return "unknown"
    status = info.status if info.status in STATUSES else "unknown"
    if status == "running" and info.host == socket.gethostname():
        if run_dir is None:
            alive = pid_alive(info.pid)
        else:
            alive = run_alive(run_dir, info.process, info.ranks, info.pid, lock_ours)
        if not alive:
            return "interrupted"
    return status


# ---------------------------------------------------------------------------
# tags and notes (``n2n-core tag`` / ``note``, the TUI)

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
NOTE_MAX = 4000


def run_tags(info: RunInfo | None) -> list[str]:
    tags = info.tags if info is not None else None
    return [t for t in tags if isinstance(t, str)] if tags else []


def check_tag_changes(changes: list[str]) -> None:
    if not changes:
        raise UserError("tag: give +TAG to add or -TAG to remove, e.g. +baseline -draft")
    for c in changes:
        if c[:1] not in ("+", "-") or not TAG_RE.match(c[1:]):
            raise UserError(
                f"tag {c!r}: expected +TAG or -TAG; a tag is letters, digits and ._:/- "
                "(at most 64, starting with a letter or digit)"
            )


def retag_run(run_dir: Path, changes: list[str]) -> list[str]:
    """Apply ``+TAG`` / ``-TAG`` changes to the run's tags; returns the new tags."""
    check_tag_changes(changes)
    if read_run_info(run_dir) is None:
        raise UserError(f"{Path(run_dir) / RUN_JSON}: missing or unreadable; cannot tag this run")

    def edit(info: RunInfo) -> dict[str, Any]:
        tags = run_tags(info)
        for c in changes:
            if c[0] == "+" and c[1:] not in tags:
                tags.append(c[1:])
            elif c[0] == "-" and c[1:] in tags:
                tags.remove(c[1:])
        return {"tags": tags}

    return run_tags(update_run_info(run_dir, edit=edit))


def clean_note(text: str) -> str:
    """A note as stored: control characters (but newlines) become spaces, at most NOTE_MAX."""
    note = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in text).strip()
    if len(note) > NOTE_MAX:
        raise UserError(f"note: {len(note)} characters; at most {NOTE_MAX}")
    return note


def set_run_note(run_dir: Path, text: str) -> str:
    """Set the run's note (an empty text clears it)."""
    note = clean_note(text)
    if read_run_info(run_dir) is None:
        raise UserError(
            f"{Path(run_dir) / RUN_JSON}: missing or unreadable; cannot annotate this run"
        )
    update_run_info(run_dir, note=note)
    return note
