"""Shared test helpers, importable from every test folder (``pythonpath`` in pyproject)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
PRESETS = REPO / "presets"
