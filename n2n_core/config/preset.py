"""A preset from a file: read (bounded), ``--set`` overrides applied, validated.

The schema is :mod:`~n2n_core.config.schema`; the YAML reader
:mod:`~n2n_core.config.loader`; overrides :mod:`~n2n_core.config.overrides`.
"""

from __future__ import annotations

from pathlib import Path

from n2n_core.config.loader import read_preset_data
from n2n_core.config.overrides import apply_overrides
from n2n_core.config.schema import Preset, validate_preset


def load_preset(path: str | Path, overrides: list[str] | None = None) -> Preset:
    data = read_preset_data(path)
    data = apply_overrides(data, list(overrides or []))
    return validate_preset(data, str(path))
