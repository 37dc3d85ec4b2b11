"""Checks on a file the user named, before any library parses it.

One home for what presets, images, snapshots and frozen models all need: the
file exists and is a regular file (a FIFO would block the open, ``/dev/zero``
never ends, a folder is no file), can be read, is not empty — and, for weights,
whether it starts like a pickle, which n2n never loads (it is named as such
instead of failing as "corrupt").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from n2n_core.errors import UserError


def kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(p: Path, what: str, expected: str) -> os.stat_result:
    """``p``'s stat when it is a regular file (symlinks followed); anything else is a UserError.

    Checked with ``stat`` before any ``open``: opening a FIFO blocks until a writer
    comes, which would hang the command instead of failing it.
    """
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UserError(f"{p}: {what} not found") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read {what} ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{p}: is {kind_of(st.st_mode)}, expected {expected}")
    return st


def is_regular_file(p: str | Path) -> bool:
    """Whether ``p`` is a regular file (symlinks followed): what tolerant readers of run
    folders check first, so that a FIFO or device planted there cannot hang them."""
    try:
        return stat.S_ISREG(os.stat(p).st_mode)
    except (OSError, ValueError):
        return False


def _open_regular(p: Path, what: str, expected: str):
    check_regular(p, what, expected)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, open still returns.
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise UserError(f"{p}: cannot read {what} ({e.strerror})") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise UserError(f"{p}: is not a regular file, expected {expected}")
    return f


def read_head(p: Path, what: str, expected: str, n: int = 16) -> bytes:
    """The first ``n`` bytes of ``p``; a missing, special, unreadable or empty file is a UserError."""
    with _open_regular(p, what, expected) as f:
        try:
            head = f.read(n)
        except OSError as e:
            raise UserError(f"{p}: cannot read {what} ({e.strerror})") from None
    if not head:
        raise UserError(f"{p}: {what} is empty (0 bytes)")
    return head


def read_bounded(p: Path, what: str, expected: str, limit: int) -> bytes:
    """All of ``p`` when it is a regular file of at most ``limit`` bytes; else a UserError."""
    with _open_regular(p, what, expected) as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise UserError(f"{p}: cannot read {what} ({e.strerror})") from None
    if len(data) > limit:
        raise UserError(f"{p}: {what} is larger than {limit // 1024} KiB; refusing to read it")
    return data


def looks_pickled(head: bytes) -> bool:
    """A pickle (protocol 2-5 opcode) or a torch.save zip archive.

    Only a hint for the message: a safetensors file opens with its header length,
    whose low byte can be 0x80 too, so callers check their own format first.
    """
    pickle = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    return pickle or head[:4] == b"PK\x03\x04"


def change_stamp(p: str | Path) -> tuple[int, int] | None:
    """(modification time, size) of ``p``, or None: what a reader that re-reads a small
    file only when it changed compares between polls."""
    try:
        st = os.stat(p)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
