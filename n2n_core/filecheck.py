"""Checks on a file the user named, before any library parses it.

One home for what snapshots and frozen models both need: the file exists, is not
a folder, can be read, is not empty — and whether it starts like a pickle, which
n2n never loads (it is named as such instead of failing as "corrupt").
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


def read_head(p: Path, what: str, expected: str, n: int = 16) -> bytes:
    """The first ``n`` bytes of ``p``; a missing, folder, unreadable or empty file is a UserError."""
    if not p.exists():
        raise UserError(f"{p}: {what} not found")
    if p.is_dir():
        raise UserError(f"{p}: is a folder, expected {expected}")
    try:
        with open(p, "rb") as f:
            head = f.read(n)
    except OSError as e:
        raise UserError(f"{p}: cannot read {what} ({e.strerror})") from None
    if not head:
        raise UserError(f"{p}: {what} is empty (0 bytes)")
    return head


def looks_pickled(head: bytes) -> bool:
    """A pickle (protocol 2-5 opcode) or a torch.save zip archive.

    Only a hint for the message: a safetensors file opens with its header length,
    whose low byte can be 0x80 too, so callers check their own format first.
    """
    pickle = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    return pickle or head[:4] == b"PK\x03\x04"
