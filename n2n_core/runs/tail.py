"""Following a file that grows: whole new lines, and a reset when it was rewritten.

One :class:`FileTail` per file remembers its offset and holds back a partial
last line until its newline arrives (as toolong does). A file that was
replaced (another inode), truncated, or rewritten in place (the bytes at the
start, or just before the remembered offset, are no longer the ones read) is
read again from the start, and the reader is told so with ``reset=True`` and
must drop what it built from the old content. ``n2n-core resume`` rewrites
``metrics.jsonl`` this way (records past the snapshot dropped), often to a
file longer than the old offset by the time a reader looks again.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, NamedTuple

from n2n_core.runs.records import decode_lines, parse_lines

PROBE = 64  # bytes compared at the start of the file and before the offset


class Chunk(NamedTuple):
    """What one poll found: ``reset`` (forget everything read before) and the new items."""

    reset: bool
    items: list[Any]  # lines (bytes) from FileTail; records, or decoded objects, from MetricsTail


class FileTail:
    """New complete lines of one file, from a remembered offset.

    ``start_window``: on the first read (and after a reset) only the last that
    many bytes are read, for views that show just the end (a log pane).
    """

    def __init__(self, path: str | Path, start_window: int | None = None):
        self.path = Path(path)
        self.start_window = start_window
        self.offset = 0
        self.last_read = 0  # bytes the last poll read
        self._partial = b""
        self._ident: tuple[int, int] | None = None
        self._stamp: tuple[int, int] | None = None
        self._head = b""  # the first PROBE bytes as read
        self._before = b""  # the PROBE bytes before ``offset`` as read

    def _forget(self) -> None:
        self.offset, self._partial = 0, b""
        self._head = self._before = b""

    def poll(self, max_bytes: int | None = None) -> Chunk:
        """Complete lines appended since the last poll (at most ``max_bytes`` read)."""
        self.last_read = 0
        try:
            st = os.stat(self.path)
        except OSError:
            return Chunk(False, [])
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            return Chunk(False, [])
        ident, stamp = (st.st_dev, st.st_ino), (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp and ident == self._ident and st.st_size == self.offset:
            return Chunk(False, [])
        reset = False
        try:
            with open(self.path, "rb") as f:
                if self._ident is not None and (
                    ident != self._ident or st.st_size < self.offset or self._rewritten(f)
                ):
                    reset = True
                    self._forget()
                self._ident, self._stamp = ident, stamp
                size = st.st_size
                if self.offset == 0 and self.start_window and size > self.start_window:
                    self.offset = size - self.start_window
                    self._head = _read_at(f, 0, PROBE)
                want = size - self.offset
                if max_bytes is not None:
                    want = min(want, max_bytes)
                f.seek(self.offset)
                data = f.read(max(want, 0))
        except OSError:
            return Chunk(reset, [])
        if not data:
            return Chunk(reset, [])
        self.last_read = len(data)
        if self.offset < PROBE:
            self._head = (self._head + data)[:PROBE]
        self.offset += len(data)
        self._before = (self._before + data)[-PROBE:]
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return Chunk(reset, lines)

    @property
    def partial(self) -> bytes:
        """The last line read so far without its newline (torn, or still being written)."""
        return self._partial

    def _rewritten(self, f) -> bool:
        """Whether the bytes already read are no longer there (a same-inode rewrite)."""
        if self._head and _read_at(f, 0, len(self._head)) != self._head:
            return True
        n = len(self._before)
        return bool(n) and _read_at(f, self.offset - n, n) != self._before


def _read_at(f, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


class MetricsTail:
    """The new records of a growing ``metrics.jsonl`` (torn and garbage lines skipped)."""

    def __init__(self, path: str | Path):
        self.file = FileTail(path)

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def offset(self) -> int:
        return self.file.offset

    @property
    def last_read(self) -> int:
        return self.file.last_read

    def read_new(self, max_bytes: int | None = None, typed: bool = True) -> Chunk:
        """The new records; with ``typed=False`` the lines' decoded JSON objects, which
        :meth:`RunState.feed <n2n_core.runs.state.RunState.feed>` reads faster."""
        reset, lines = self.file.poll(max_bytes)
        return Chunk(reset, parse_lines(lines) if typed else decode_lines(lines))
