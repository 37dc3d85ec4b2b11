"""Shared fixtures: tiny image folders and presets so tests run in seconds on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Keep every test process to its share of a small CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def _decide_openmp_waiting() -> dict[str, str]:
    """Let this process's OpenMP threads wait as ``n2n-core`` decides for its own processes.

    Many tests train and validate in this process. Left to libgomp's default, its idle
    threads spin, and on 2 shared cores that starves whatever else runs there (in the
    ompenv benchmark a 2-thread step became 9x slower). The CLI decides before torch
    loads (``n2n_core.process.ompenv``); so does this, at the same point.
    """
    from n2n_core.process import ompenv

    return ompenv.apply()


_OMP_DECIDED = _decide_openmp_waiting()


def pytest_collection_finish(session):
    """Collection has imported torch with the setting above; now take it back out of the
    environment, so that every ``n2n-core`` subprocess decides for itself, as a user's does."""
    for key in _OMP_DECIDED:
        os.environ.pop(key, None)


def _photo(name: str) -> np.ndarray:
    from n2n_core.data.builtin import skimage_data_dir
    from n2n_core.data.images import load_image

    return load_image(skimage_data_dir() / name)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """Four small colour crops of the bundled photos (training-sized)."""
    from n2n_core.data.images import save_image

    d = tmp_path_factory.mktemp("photos")
    for name in ("rocket.jpg", "ihc.png", "motorcycle_left.png", "retina.jpg"):
        img = _photo(name)
        h, w = img.shape[:2]
        save_image(
            d / (Path(name).stem + ".png"),
            img[h // 2 - 48 : h // 2 + 48, w // 2 - 64 : w // 2 + 64],
        )
    return d


@pytest.fixture(scope="session")
def val_dir(tmp_path_factory) -> Path:
    """Two small held-out crops with odd sizes (exercise the pad-to-32 path)."""
    from n2n_core.data.images import save_image

    d = tmp_path_factory.mktemp("val")
    for name in ("astronaut.png", "coffee.png"):
        img = _photo(name)
        save_image(d / (Path(name).stem + ".png"), img[100:171, 120:217])
    return d


@pytest.fixture
def make_preset(tmp_path, photo_dir, val_dir):
    """Write a tiny preset (dict overrides merged in) and return its path."""

    def make(**overrides) -> Path:
        data = {
            "name": "tiny",
            "task": "image",
            "noise": {"type": "gaussian"},
            "targets": "noisy",
            "data": {"train": str(photo_dir), "val": str(val_dir), "samples": 1},
            "train": {
                "steps": 6,
                "batch": 2,
                "crop": 32,
                "lr": 0.001,
                "val_every": 3,
                "snapshot_every": 3,
                "log_every": 1,
                "seed": 0,
            },
            "runtime": {"device": "cpu", "precision": "fp32", "threads": 1},
        }
        for key, value in overrides.items():
            node = data
            parts = key.split("__")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = value
        path = tmp_path / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make
