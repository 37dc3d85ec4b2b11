"""The one output check: every command that writes a file or folder the user named
calls :func:`check_output` before any work (and every atomic write does, as a
last line of defence), and makes its folders with :func:`make_output_dir`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from n2n_core.errors import UserError
from n2n_core.files.checks import kind_of
from n2n_core.runs.layout import run_file_owner

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
    ours: bool = False,
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
    earlier result: replaced. No run's own files (:func:`run_file_owner`) are ever an
    output, unless ``ours``: the run's own writer replacing them atomically.
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
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else kind_of(st.st_mode)
        raise UserError(f"{p}: is {kind}; refusing to replace it with {what}")
    real = os.path.realpath(p)
    for folder in input_folders:
        root = os.path.realpath(folder)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            raise UserError(f"{p}: is inside the input folder {folder}; write {what} elsewhere")
    if not ours:
        owner = run_file_owner(p)
        if owner is not None:
            raise UserError(
                f"{p}: is a file of the run {owner}, which only that run writes; "
                f"write {what} elsewhere"
            )
    return p


def make_output_dir(path: Path, flag: str) -> None:
    """Create an output folder; an existing file or an unwritable parent is a UserError."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: {flag} is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path}: cannot create {flag} ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path}: {flag} is not writable")
