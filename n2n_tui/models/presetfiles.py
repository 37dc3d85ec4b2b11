"""The preset files of a folder, each validated (or with the error that names its key)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2n_core.config.loader import read_preset_data
from n2n_core.config.schema import Preset, validate_preset
from n2n_core.errors import UserError


@dataclass(frozen=True)
class PresetEntry:
    path: Path
    data: dict[str, Any] | None
    preset: Preset | None
    error: str | None


def load_presets(folder: Path) -> list[PresetEntry]:
    try:
        files = sorted(p for p in folder.glob("*.yaml") if p.is_file())
    except OSError:
        return []
    out = []
    for p in files:
        try:
            data = read_preset_data(p)
            out.append(PresetEntry(p, data, validate_preset(data, p.name), None))
        except UserError as e:
            out.append(PresetEntry(p, None, None, str(e)))
    return out
