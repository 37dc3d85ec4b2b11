"""End-to-end tests: real ``n2n-core`` processes, training for a while, torchrun, signals.

Everything in this folder is marked ``slow`` (``-m "not slow"`` leaves it out);
``make test-fast`` runs tests/unit and the layer contract instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.slow)
