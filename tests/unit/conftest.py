"""Fixtures of the unit tests (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory) -> Path:
    """An untrained U-Net's snapshot, as a run writes it (read-only: copy it to spoil it)."""
    import torch

    from n2n_core.engine.network import UNet
    from n2n_core.engine.snapshots import save_snapshot

    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("snap") / "good.safetensors"
    save_snapshot(p, UNet(3), {"step": 1, "task": "image", "noise": "gaussian", "targets": "noisy"})
    return p
