"""Which preset keys differ between two runs (``n2n-core diff``, the TUI's Compare)."""

from __future__ import annotations

from typing import Any

ABSENT = object()  # a key one preset has and the other does not


def flat_keys(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested sections flattened to dotted keys (``train.lr``), the form ``--set`` takes."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flat_keys(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def show_value(value: Any) -> str:
    """A preset value on one line, as ``diff`` shows it: JSON tells "1" from 1; absent says so."""
    import json

    return "(absent)" if value is ABSENT else json.dumps(value)


def preset_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every key whose values differ, in key order."""
    fa, fb = flat_keys(a), flat_keys(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return [
        (k, fa.get(k, ABSENT), fb.get(k, ABSENT))
        for k in keys
        if fa.get(k, ABSENT) != fb.get(k, ABSENT)
    ]
