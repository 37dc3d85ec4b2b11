"""``--set KEY=VALUE``: values typed on a command line, read as YAML, set by dotted key."""

from __future__ import annotations

import re
from typing import Any

import yaml

from n2n_core.config.loader import _load_yaml
from n2n_core.config.schema import _short
from n2n_core.errors import UserError


def parse_value(raw: str, source: str = "value") -> Any:
    """A value typed on the command line, read as YAML (``0.1`` a number, ``[0, 50]`` a list)."""
    try:
        value = _load_yaml(raw, source) if raw.strip() else ""
    except yaml.YAMLError:
        return raw
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        # YAML 1.1 reads 1e-3 (no dot) as a string; on a command line it is a number.
        return float(value)
    return value


_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. train.steps=200")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise UserError(f"--set {text!r}: bad key {key!r}")
    return key.split("."), parse_value(raw, f"--set {_short(text)}")


def set_key(data: dict[str, Any], path: list[str], value: Any, what: str) -> None:
    """Set the dotted key ``path`` in a preset mapping; ``what`` names the flag in errors."""
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"{what}: {part} is not a section")
        node = child
    node[path[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        set_key(data, path, value, f"--set {text!r}")
    return data
