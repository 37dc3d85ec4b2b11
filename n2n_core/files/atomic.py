"""Files that readers see whole: the old content or the new, never half."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path = Path(path)
    # A device, FIFO, folder or symlink there is not a file of ours to replace.
    from n2n_core.files.output import check_output

    if path.parent.is_dir():  # a missing folder stays the OSError callers handle
        check_output(path, "a file", ours=True)
    fd, tmp = open_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def open_temp_beside(path: Path, kind: str = "tmp") -> tuple[int, Path]:
    """A new file next to ``path`` for a write that is renamed over it when whole.

    Created exclusively under a name no one can predict (``.NAME.tmp-PID-RANDOM``:
    a link planted there beforehand is never written through); the pid tells
    :func:`remove_orphan_temps` whose it was. The mode is the usual 0644 less the
    umask, as for any file the user's programs write.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            return os.open(tmp, flags, 0o644), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: no free temporary name beside it")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_TEMP_RE = re.compile(r"^\..+\.tmp-(\d+)(?:-[0-9a-f]{8})?$")


def remove_orphan_temps(folder: Path, pid_alive: Callable[[int], bool]) -> list[Path]:
    """Delete the temp files of :func:`atomic_write_bytes` left in ``folder`` by dead writers.

    Only names of our own pattern (``.NAME.tmp-PID-RANDOM``) whose PID ``pid_alive``
    says no longer runs here: a live writer's temp file is never touched.
    Returns what was removed.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_RE.match(p.name)
        if not m or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        try:
            if p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed
