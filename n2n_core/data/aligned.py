"""Random crops taken at the same place, with the same flips, from aligned images.

For noisy/noisy pairs both halves must get exactly the same crop and flip, or the
network would learn to predict a shifted image. A group of one image (``noisy:``)
uses the same code. As in :class:`~n2n_core.data.sources.CropSampler`, the batch
of a step is a pure function of the generator, so resuming needs no loader state.

Images smaller than the crop are an error naming the file: resizing them up, as
the clean-photo sampler does, would correlate the noise of neighbouring pixels,
which both Noise2Noise pairs and Neighbor2Neighbor rely on being independent.
"""

from __future__ import annotations

import numpy as np

from n2n_core.errors import UserError


def flip(img: np.ndarray, code: int) -> np.ndarray:
    """Flip (H, W, C) by ``code``: bit 0 left-right, bit 1 up-down (rows and columns stay rows
    and columns, so row- or column-wise sensor noise keeps its orientation)."""
    if code & 1:
        img = img[:, ::-1]
    if code & 2:
        img = img[::-1]
    return img


class AlignedCropSampler:
    """Crops of ``crop`` x ``crop`` pixels from groups of same-size uint8 (H, W, C) images."""

    def __init__(
        self,
        groups: list[tuple[np.ndarray, ...]],
        names: list[str],
        crop: int,
        flips: bool = True,
    ):
        if not groups:
            raise UserError("no training images")
        for group, name in zip(groups, names, strict=True):
            h, w = group[0].shape[:2]
            if h < crop or w < crop:
                raise UserError(
                    f"{name}: image is {w}x{h}, smaller than train.crop {crop}; "
                    "lower train.crop or remove the file"
                )
        self.groups = groups
        self.names = names
        self.crop = crop
        self.flips = flips
        self.size = len(groups[0])
        self.channels = int(groups[0][0].shape[2])

    def __len__(self) -> int:
        return len(self.groups)

    def sample(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        """uint8 (group size, batch, crop, crop, C): item ``[k, b]`` is image k of crop b."""
        c = self.crop
        out = np.empty((self.size, batch, c, c, self.channels), np.uint8)
        for b, i in enumerate(rng.integers(0, len(self.groups), batch)):
            group = self.groups[i]
            h, w = group[0].shape[:2]
            y = int(rng.integers(0, h - c + 1))
            x = int(rng.integers(0, w - c + 1))
            code = int(rng.integers(0, 4)) if self.flips else 0
            for k, img in enumerate(group):
                out[k, b] = flip(img[y : y + c, x : x + c], code)
        return out
