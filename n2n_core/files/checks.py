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


def _kind(mode: int) -> str:
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
        raise UserError(f"{p}: is {_kind(st.st_mode)}, expected {expected}")
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


InputIds = dict[tuple[int, int], Path]


def input_ids(paths) -> InputIds:
    """(device, inode) -> path of each input that exists: built once for a command with
    many inputs (an image folder), so each output is checked against all in O(1)."""
    ids: InputIds = {}
    for src in paths:
        try:
            st = os.stat(src)
        except OSError:
            continue
        ids[(st.st_dev, st.st_ino)] = Path(src)
    return ids


def check_output(
    out: str | Path,
    what: str,
    inputs: tuple[str | Path, ...] | InputIds = (),
    input_folders: tuple[str | Path, ...] = (),
    folder: bool = False,
) -> Path:
    """Refuse, before any work, an output that would destroy what is not a result of ours.

    The one check every command that writes a file the user named goes through (and
    every atomic write, as a last line of defence). ``folder``: ``out`` is a folder the
    command writes into (it may exist as one). Otherwise ``out`` is a file: its folder
    must exist, and a folder, device, FIFO or symlink there is never replaced by a file
    (the write would swap ``/dev/null`` or a link for a regular file). ``out`` may not
    be one of the command's ``inputs`` (same file or hard link; paths or an
    :func:`input_ids` map) nor lie inside one of its ``input_folders`` (a data set, a
    run folder) it would spoil. An existing regular file that is none of those is an
    earlier result: replaced.
    """
    p = Path(out).expanduser()
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UserError(f"{p}: cannot check {what} ({e.strerror})") from None
    if st is not None and inputs:  # a link to an input is named as the input it reaches
        ids = inputs if isinstance(inputs, dict) else input_ids(inputs)
        try:
            target = os.stat(p)
            hit = ids.get((target.st_dev, target.st_ino))
        except OSError:
            hit = None
        if hit is not None:
            raise UserError(f"{p}: would overwrite the input {hit}; choose another path for {what}")
    if folder:
        if st is not None and not os.path.isdir(p):
            raise UserError(f"{p}: is not a folder; {what} needs one")
    elif st is None:
        if not p.parent.is_dir():
            raise UserError(f"{p}: cannot write {what} (folder {p.parent} not found)")
    elif stat.S_ISDIR(st.st_mode):
        raise UserError(f"{p}: is a folder; {what} needs a file name")
    elif not stat.S_ISREG(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else _kind(st.st_mode)
        raise UserError(f"{p}: is {kind}; refusing to replace it with {what}")
    real = os.path.realpath(p)
    for folder in input_folders:
        root = os.path.realpath(folder)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            raise UserError(f"{p}: is inside the input folder {folder}; write {what} elsewhere")
    return p
