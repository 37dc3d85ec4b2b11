"""Where training crops and validation images come from.

A data spec is one of:

- ``builtin:photos`` / ``-plus`` / ``-max`` / ``-val`` / ``-holdout``: the
  pictures scikit-image ships (``data/builtin.py``);
- a folder of images (png, jpg, ...), read once at start;
- a packed data set file from ``n2n-core dataset build`` (memory-mapped).

Images smaller than the crop are resized up to crop x crop (bicubic), as the
reference does; a crop larger than every image of the set is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from n2n_core.config.schema import DataSpec
from n2n_core.data.builtin import builtin_files
from n2n_core.data.images import list_images, load_image, resize_to, shrink_to
from n2n_core.data.packed import is_packed, open_packed
from n2n_core.errors import UserError


def _spec_files(spec: str) -> tuple[list[Path] | None, Path | None]:
    """(image files, None) for a folder/builtin, or (None, packed file)."""
    ds = DataSpec.parse(spec)
    if ds.kind == "builtin":
        return builtin_files(ds.value), None
    p = Path(spec).expanduser()
    if not p.exists():
        raise UserError(f"{spec}: data path not found")
    if p.is_file():
        if is_packed(p):
            return None, p
        return [p], None
    files = list_images(p)
    if not files:
        raise UserError(f"{spec}: no images found in folder (png, jpg, bmp, tif, webp, ppm, gif)")
    return files, None


def load_images(spec: str, channels: int = 3) -> tuple[list[np.ndarray], list[str]]:
    files, packed = _spec_files(spec)
    if packed is not None:
        arrays, names, ch = open_packed(packed)
        if ch != channels:
            raise UserError(f"{packed}: data set has {ch} channel(s), the task needs {channels}")
        return arrays, names
    assert files is not None
    return [load_image(f, channels) for f in files], [f.name for f in files]


class CropSampler:
    """Random crops of a fixed size from a set of uint8 (H, W, C) images.

    Each crop picks an image uniformly, then a position uniformly. The batch for
    a step comes from a generator seeded by (seed, rank, step), so the data order
    is a pure function of the step: resuming needs no saved data-loader state.
    """

    def __init__(self, images: list[np.ndarray], names: list[str], crop: int, source: str = ""):
        if not images:
            raise UserError(f"{source}: no training images")
        if all(min(a.shape[0], a.shape[1]) < crop for a in images):
            biggest = max(images, key=lambda a: min(a.shape[:2]))
            raise UserError(
                f"train.crop: {crop} is larger than every image in {source} "
                f"(largest is {biggest.shape[1]}x{biggest.shape[0]}); lower train.crop"
            )
        self.images = [
            a if a.shape[0] >= crop and a.shape[1] >= crop else resize_to(np.asarray(a), crop, crop)
            for a in images
        ]
        self.names = names
        self.crop = crop
        self.channels = int(images[0].shape[2])

    def __len__(self) -> int:
        return len(self.images)

    def sample(
        self,
        batch: int,
        rng: np.random.Generator,
        out: np.ndarray | None = None,
        min_scale: float = 1.0,
    ) -> np.ndarray:
        """``batch`` crops; with ``min_scale`` < 1 each is cut from a region up to
        1/min_scale times larger (its scale drawn uniformly in [min_scale, 1]) and
        area-averaged down to the crop (``data.augment.min_scale``)."""
        c = self.crop
        if out is None:
            out = np.empty((batch, c, c, self.channels), np.uint8)
        idx = rng.integers(0, len(self.images), batch)
        scales = rng.uniform(min_scale, 1.0, batch) if min_scale < 1.0 else None
        for b, i in enumerate(idx):
            img = self.images[i]
            side = c
            if scales is not None:
                side = min(int(round(c / scales[b])), img.shape[0], img.shape[1])
            y = int(rng.integers(0, img.shape[0] - side + 1))
            x = int(rng.integers(0, img.shape[1] - side + 1))
            region = img[y : y + side, x : x + side]
            out[b] = region if side == c else shrink_to(region, c)
        return out


def open_train(spec: str, crop: int, channels: int = 3) -> CropSampler:
    images, names = load_images(spec, channels)
    return CropSampler(images, names, crop, spec)


@dataclass
class ValImage:
    name: str
    pixels: np.ndarray  # uint8 (H, W, C)


def open_val(spec: str, channels: int = 3, max_images: int | None = None) -> list[ValImage]:
    images, names = load_images(spec, channels)
    order = sorted(range(len(names)), key=lambda i: names[i])  # the reference sorts by name
    if max_images:
        order = order[:max_images]
    return [ValImage(names[i], np.asarray(images[i])) for i in order]
