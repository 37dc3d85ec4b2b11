"""Every lock of the project, one mechanism: an exclusive ``flock`` on a file of ours.

- the run folder (``RUN/.lock``): held by a run's launcher for its whole life,
  so a second writer is refused with one ``error:`` line;
- the sweep (``SWEEP/scheduler.lock``): one scheduler per sweep;
- device slots (``RESULTS/sweeps/.devices/<kind><id>.lock``): two schedulers
  never train on one device at once;
- ``run.json`` edits: a short lock on the run folder itself (:func:`folder_locked`).

The kernel drops an ``flock`` when its holder exits however it exits (SIGKILL
included), so a lock file left behind never blocks what follows; a free lock on
a run that says ``running`` therefore proves that its launcher is gone. Lock
files are opened by :func:`n2n_core.files.safe.open_own`: never through a
symlink, only a regular file. The pid written into a lock file is only shown in
messages, never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from n2n_core.errors import UserError
from n2n_core.files.safe import open_own
from n2n_core.runs.layout import LOCK_FILE

LOCK_NAME = LOCK_FILE
# Probes (``is_held``) hold a shared lock for microseconds; a writer retries that long.
_ACQUIRE_RETRY_S = 0.5


def lock_path(folder: str | Path, name: str = LOCK_NAME) -> Path:
    return Path(folder) / name


class Lock:
    """An exclusive lock on one lock file, held from :meth:`try_acquire` until
    :meth:`release` or the end of the process."""

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self.fd: int | None = None
        self.holder = ""  # `` (pid N)`` of the process that kept it from us, for messages

    def try_acquire(self, retry_s: float = 0.0) -> bool:
        """True once the lock is ours; False when another process still holds it after
        ``retry_s``. A lock file that cannot be opened safely is a :class:`UserError`."""
        try:
            fd = open_own(self.path, os.O_RDWR | os.O_CREAT, f"the {self.what} lock")
        except OSError as e:
            raise UserError(
                f"{self.path}: cannot open the {self.what} lock ({e.strerror})"
            ) from None
        deadline = time.monotonic() + retry_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self.holder = _holder(fd)
                        os.close(fd)
                        return False
                    time.sleep(0.02)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None


class FolderLock:
    """One writer per folder: the lock on ``FOLDER/name``, or a :class:`UserError` naming
    the folder (and its holder's pid) when another process has it."""

    def __init__(self, what: str = "run folder", name: str = LOCK_NAME) -> None:
        self.what = what
        self.name = name
        self.folder: Path | None = None
        self._lock: Lock | None = None

    @property
    def fd(self) -> int | None:
        return None if self._lock is None else self._lock.fd

    def acquire(self, folder: str | Path) -> FolderLock:
        folder = Path(folder)
        lock = Lock(lock_path(folder, self.name), self.what)
        if not lock.try_acquire(_ACQUIRE_RETRY_S):
            raise UserError(
                f"{folder}: in use by another n2n-core process{lock.holder}; "
                f"one writer per {self.what} (stop it first)"
            )
        self.folder, self._lock = folder, lock
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()

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
    """Whether a live process holds the folder's lock; None when the folder has no lock
    file (or none that is safely ours to probe)."""
    try:
        fd = open_own(lock_path(folder, name), os.O_RDONLY, "a lock")
    except (UserError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def folder_locked(folder: str | Path) -> Iterator[None]:
    """A short exclusive lock on ``folder`` itself, no lock file left behind: what every
    writer of a shared file in it (``run.json``) takes for one edit. A symlink where
    the folder should be is refused, not followed."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        if os.path.islink(folder):
            raise UserError(f"{folder}: is a symlink; refusing to lock through it") from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock
