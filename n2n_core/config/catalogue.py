"""Which presets a command can name: the built-in ones the package carries, and a local folder.

The built-in presets are package data, ``n2n_core/presets/*.yaml``. In a clone that
folder is a link to the repository's ``presets/``, so the repository's files are the
built-in set itself (one set of files, nothing to keep in step); an installed wheel
carries copies of them. A local folder -- ``./presets`` where it exists, or the one
``--presets-dir`` names -- adds presets and overrides a built-in one of the same
name. ``n2n-core run quickstart`` finds a preset by name (local first); a path
(``presets/quickstart.yaml``, anything with a ``/`` or a ``.yaml`` suffix) is that
file, as before.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from n2n_core.config.schema import NAME_PATTERN
from n2n_core.errors import UserError

Source = Literal["builtin", "local"]

# The local folder when no --presets-dir is given: ./presets, where it exists.
LOCAL_DIR = Path("presets")

SUFFIXES = (".yaml", ".yml")


def builtin_dir() -> Path:
    """The folder of built-in presets inside the installed package."""
    return Path(str(importlib.resources.files("n2n_core").joinpath("presets")))


@dataclass(frozen=True)
class PresetFile:
    """One preset a name finds: its file, where it comes from, and whether it hides a built-in."""

    name: str
    path: Path
    source: Source
    overrides_builtin: bool = False

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "source": self.source,
            "overrides_builtin": self.overrides_builtin,
        }


def local_dir(presets_dir: str | Path | None = None) -> Path:
    """The local folder: ``presets_dir`` when given (it must be a folder), else ``./presets``."""
    if presets_dir is None:
        return LOCAL_DIR
    p = Path(presets_dir).expanduser()
    if not p.is_dir():
        what = "is not a folder" if p.exists() else "no such folder"
        raise UserError(f"--presets-dir {presets_dir}: {what}")
    return p


def _yaml_files(folder: Path) -> dict[str, Path]:
    """name -> file of the presets in ``folder`` (.yaml before .yml); none when it is unreadable."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return {}
    out: dict[str, Path] = {}
    for p in entries:
        if p.suffix in SUFFIXES and p.stem not in out and p.is_file():
            out[p.stem] = p
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def list_presets(local: Path = LOCAL_DIR) -> list[PresetFile]:
    """Every preset a name finds, by name: the ``local`` folder's (none when it is not
    there), then the built-ins it leaves.

    A local file that is the built-in one itself (the clone's ``presets/``, which the
    package links to) counts as built-in.
    """
    builtin = _yaml_files(builtin_dir())
    local_files = _yaml_files(local)
    found: dict[str, PresetFile] = {
        name: PresetFile(name, path, "builtin") for name, path in builtin.items()
    }
    for name, path in local_files.items():
        if name in builtin and _same_file(path, builtin[name]):
            continue
        found[name] = PresetFile(name, path, "local", overrides_builtin=name in builtin)
    return [found[n] for n in sorted(found)]


def is_preset_name(spec: str) -> bool:
    """A bare name (``quickstart``), as opposed to a path to a file."""
    return (
        "/" not in spec
        and os.sep not in spec
        and Path(spec).suffix not in SUFFIXES
        and re.match(NAME_PATTERN, spec) is not None
    )


def find_preset(spec: str | Path, presets_dir: str | Path | None = None) -> Path:
    """The file ``spec`` names: a path as given, a bare name from the local folder
    (``presets_dir``, checked to be a folder, else ``./presets``) or the built-ins.

    An unknown name is a ``UserError`` listing the names there are; a bare name that
    is no preset but an existing file is that file.
    """
    text = str(spec)
    local = local_dir(presets_dir)
    if not is_preset_name(text):
        return Path(text)
    found = list_presets(local)
    for entry in found:
        if entry.name == text:
            return entry.path
    if Path(text).is_file():
        return Path(text)
    names = ", ".join(e.name for e in found)
    raise UserError(
        f"{text}: no such preset (a name: {names}; or a path to a .yaml file; "
        "`n2n-core presets` lists them)"
    )
