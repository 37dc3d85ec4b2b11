"""One writer per folder: an exclusive ``flock`` on ``FOLDER/.lock``.

A trainer (``n2n-core run`` / ``resume``) holds its run folder's lock for its
whole life; a second writer is refused with one ``error:`` line. The kernel
drops the lock when the holder exits however it exits (SIGKILL included), so a
lock file left behind never blocks the resume that follows; a free lock on a
run that says ``running`` therefore proves that its launcher is gone.

The lock file is our own regular file (never followed through a symlink); the
pid written into it is only shown in messages, never signalled.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path

from n2n_core.errors import UserError

LOCK_NAME = ".lock"
# Probes (``is_held``) hold a shared lock for microseconds; a writer retries that long.
_ACQUIRE_RETRY_S = 0.5


def lock_path(folder: str | Path, name: str = LOCK_NAME) -> Path:
    return Path(folder) / name


class FolderLock:
    """An exclusive lock on one folder, held from :meth:`acquire` until :meth:`release` or exit."""

    def __init__(self, what: str = "run folder", name: str = LOCK_NAME) -> None:
        self.what = what
        self.name = name
        self.folder: Path | None = None
        self.fd: int | None = None

    def acquire(self, folder: str | Path) -> FolderLock:
        """Take the lock or raise :class:`UserError` naming the folder (and its holder's pid)."""
        folder = Path(folder)
        path = lock_path(folder, self.name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UserError(f"{path}: cannot open the {self.what} lock ({e.strerror})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UserError(f"{path}: not a regular file; cannot lock the {self.what}")
            deadline = time.monotonic() + _ACQUIRE_RETRY_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise UserError(
                            f"{folder}: in use by another n2n-core process{_holder(fd)}; "
                            f"one writer per {self.what} (stop it first)"
                        ) from None
                    time.sleep(0.02)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.folder, self.fd = folder, fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    """`` (pid N)`` from the lock file, for the message only."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {int(text)})" if text.isdigit() else ""


def is_held(folder: str | Path, name: str = LOCK_NAME) -> bool | None:
    """Whether a live process holds the folder's lock; None when the folder has no lock file."""
    try:
        fd = os.open(lock_path(folder, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)
