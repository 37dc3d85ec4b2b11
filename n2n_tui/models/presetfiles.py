"""The presets the TUI offers: the built-in ones and the local folder's, each validated
(or with the error that names its key), each with where it comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2n_core.config.catalogue import Source, list_presets
from n2n_core.config.loader import read_preset_data
from n2n_core.config.schema import Preset, validate_preset
from n2n_core.errors import UserError


@dataclass(frozen=True)
class PresetEntry:
    path: Path
    data: dict[str, Any] | None
    preset: Preset | None
    error: str | None
    source: Source = "local"
    overrides_builtin: bool = False

    @property
    def source_label(self) -> str:
        return "local, over built-in" if self.overrides_builtin else self.source


def load_presets(folder: Path) -> list[PresetEntry]:
    """Every preset by name: the local ``folder``'s (it need not exist), then the built-ins."""
    out = []
    for f in list_presets(folder):
        try:
            data = read_preset_data(f.path)
            preset, error = validate_preset(data, f.path.name), None
        except UserError as e:
            data, preset, error = None, None, str(e)
        out.append(PresetEntry(f.path, data, preset, error, f.source, f.overrides_builtin))
    return out
