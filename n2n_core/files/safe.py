"""The one way to open a file we write in a folder others may write too, and to use
a folder of ours there (:func:`own_folder`).

Never through a symlink (``O_NOFOLLOW``: a link planted where our lock or log
should be is refused, not followed to a file of someone else's), only a
regular file (a FIFO or device there is refused after the open, which
``O_NONBLOCK`` keeps from hanging), and close-on-exec so children do not
inherit it by accident.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from n2n_core.errors import UserError


def open_own(path: str | Path, flags: int, what: str, mode: int = 0o644) -> int:
    """A file descriptor on ``path`` opened with ``flags``. A symlink or a special file
    there is a :class:`UserError` naming ``path`` and ``what`` it was to be; any other
    failure stays the ``OSError`` (a full or read-only disk is the caller's to report)."""
    extra = os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | extra, mode)
    except OSError:
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise UserError(f"{path}: is a symlink; refusing to open {what} through it") from None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise UserError(f"{path}: not a regular file; cannot use it as {what}") from None
        raise  # the open's own error (a missing folder, a full or read-only disk)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{path}: not a regular file; cannot use it as {what}")
        if not flags & os.O_NONBLOCK:  # the caller did not ask for it: block as usual
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append(path: str | Path, what: str, binary: bool = False) -> IO:
    """``path`` opened for appending (created if missing) by :func:`open_own`."""
    fd = open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, what)
    if binary:
        return os.fdopen(fd, "ab")
    return os.fdopen(fd, "a", encoding="utf-8")


def own_folder(path: str | Path, what: str, create: bool = False) -> Path:
    """``path``, checked to be a real folder of ours: a symlink there is refused, never
    followed (a link planted where our logs or locks go would send them elsewhere), and
    so is anything else that is not a directory. With ``create`` it is made if missing
    (its parents too); ``mkdir`` never follows a link, so a planted one is still refused."""
    path = Path(path)
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError as e:
            raise UserError(f"{path}: cannot create {what} ({e.strerror or e})") from None
    try:
        st = os.lstat(path)
    except OSError as e:
        raise UserError(f"{path}: cannot use it as {what} ({e.strerror or e})") from None
    if stat.S_ISLNK(st.st_mode):
        raise UserError(f"{path}: is a symlink; refusing to use it as {what}")
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{path}: not a folder; cannot use it as {what}")
    return path
