"""The embedded default data set: the colour photographs scikit-image ships.

``builtin:photos`` trains on six of them; ``builtin:photos-val`` holds three
back (never seen in training) for validation. ``builtin:photos-plus`` adds six
greyscale pictures (read as RGB, three equal channels) to the six colour ones:
the colour photos are mostly dark sky, fundus and tissue, and the grey ones
bring the textures and edges of ordinary scenes (grass, gravel, brick, a face
and a camera, coins, the moon) without adding any palette to learn.
``builtin:photos-max`` is everything worth training on: ``photos-plus`` and two of
the three held-out photos (the astronaut, the cat), leaving ``builtin:photos-holdout``
(the coffee cup) unseen to validate on -- for a long run, where more natural
pictures matter more than a three-photo validation. The files are read from the
installed package's ``data`` folder, so no download is ever needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from n2n_core.errors import UserError

TRAIN = (
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "rocket.jpg",
)
VAL = ("astronaut.png", "chelsea.png", "coffee.png")
GREY = ("brick.png", "camera.png", "coins.png", "grass.png", "gravel.png", "moon.png")
HOLDOUT = ("coffee.png",)


def skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("builtin:photos needs scikit-image (pip install scikit-image)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def builtin_files(name: str) -> list[Path]:
    table = {
        "photos": TRAIN,
        "photos-plus": TRAIN + GREY,
        "photos-val": VAL,
        "photos-all": TRAIN + VAL,
        "photos-max": TRAIN + GREY + tuple(f for f in VAL if f not in HOLDOUT),
        "photos-holdout": HOLDOUT,
    }
    if name not in table:
        raise UserError(f"builtin:{name}: unknown built-in data set (have: {', '.join(table)})")
    root = skimage_data_dir()
    files = [root / f for f in table[name]]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise UserError(f"{missing[0]}: built-in photo missing from the scikit-image install")
    return files
