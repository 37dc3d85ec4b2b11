"""``run.json``: the typed model, its tolerant parser, and its one writer.

Every change to a run's ``run.json`` (``prepare_run``, the training worker,
the torchrun launcher, ``resume``) goes through :func:`update_run_info`: it
reads the file, applies the changes and replaces the file atomically while it
holds a lock on the run folder, so two writers never lose each other's fields.
A new field is one more attribute of :class:`RunInfo`. Fields this version does
not know, and values of the wrong type, are kept as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .atomic import atomic_write_text
from .records import field_spec, merged_json, split_fields

RUN_JSON = "run.json"
STATUSES = ("running", "finished", "failed", "stopped")


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """What ``run.json`` says about a run (DESIGN.md's field names)."""

    _spec: ClassVar[tuple[tuple[str, tuple[type, ...]], ...]] = ()
    _names: ClassVar[frozenset[str]] = frozenset()

    status: str | None = None  # running | finished | failed | stopped
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
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, data: Any) -> RunInfo | None:
        """The model of a decoded ``run.json``; None when it is not a JSON object."""
        if not isinstance(data, dict):
            return None
        return cls(**split_fields(cls._spec, cls._names, data))

    def to_json(self) -> dict[str, Any]:
        return merged_json(self, {}, keep_none=True)

    @property
    def on_this_host(self) -> bool:
        return self.host is None or self.host == socket.gethostname()


RunInfo._spec = field_spec(RunInfo)
RunInfo._names = frozenset(n for n, _ in RunInfo._spec)


def read_run_info(run_dir: str | Path) -> RunInfo | None:
    """The run's ``run.json``; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads((Path(run_dir) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return RunInfo.parse(data)


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """An exclusive lock on the run folder itself (no lock file is left behind)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: writers are one process at a time there
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def update_run_info(run_dir: str | Path, **changes: Any) -> RunInfo:
    """Apply ``changes`` (field=value) to the run's ``run.json``; the only writer of it."""
    run_dir = Path(run_dir)
    with _locked(run_dir):
        info = read_run_info(run_dir) or RunInfo()
        # A field set here replaces any unreadable raw value kept for it.
        extra = {k: v for k, v in info.extra.items() if k not in changes}
        info = dataclasses.replace(info, **changes, extra=extra)
        atomic_write_text(run_dir / RUN_JSON, json.dumps(info.to_json(), indent=2) + "\n")
    return info


def pid_alive(pid: int | None) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def unreadable_status(run_dir: str | Path) -> str:
    """The status of a run whose run.json could not be read: it is missing, or corrupt."""
    return "corrupt run.json" if (Path(run_dir) / RUN_JSON).exists() else "no run.json"


def effective_status(info: RunInfo | None) -> str:
    """The status a person should see: a ``running`` run whose process is gone is ``interrupted``."""
    if info is None:
        return "unknown"
    status = info.status or "unknown"
    if status == "running" and info.host == socket.gethostname() and not pid_alive(info.pid):
        return "interrupted"
    return status
