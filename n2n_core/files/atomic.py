"""Files that readers see whole: the old content or the new, never half."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path = Path(path)
    # A device, FIFO, folder or symlink there is not a file of ours to replace.
    from n2n_core.files.checks import check_output

    if path.parent.is_dir():  # a missing folder stays the OSError callers handle
        check_output(path, "a file")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_TEMP_RE = re.compile(r"^\..+\.tmp-(\d+)$")


def remove_orphan_temps(folder: Path, pid_alive: Callable[[int], bool]) -> list[Path]:
    """Delete the temp files of :func:`atomic_write_bytes` left in ``folder`` by dead writers.

    Only names of our own pattern (``.NAME.tmp-PID``) whose PID ``pid_alive``
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
