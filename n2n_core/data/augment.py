"""Augmentation of clean training crops, applied before any noise is drawn.

Both noisy copies of a Noise2Noise pair are drawn from the one augmented clean
crop, so input and target stay aligned pixel for pixel. Three transforms:

- ``flips``: one of the 8 flips/rotations of the square (the dihedral group);
  a photo seen upside down or mirrored is still a photo.
- ``channels``: a random permutation of the colour channels. A handful of
  training photos carries a handful of palettes; without this the network
  learns that palette and pulls other colours towards it (greens came out
  grey), which no amount of extra training fixes.

- ``min_scale`` (done while cutting the crop, ``CropSampler.sample``): each
  crop cut from a region up to 1/min_scale times larger and area-averaged
  down to it -- the same photo seen from further away, with more structure per
  crop, and cleaner (averaging also removes the photo's own noise and JPEG
  blocks, so the synthetic noise is the only noise the network learns to see).

Flips and channels are exact permutations of pixels; all three happen to the
clean crop, so the noise drawn afterwards is exactly the noise asked for.
"""

from __future__ import annotations

import numpy as np


def dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th (0..7) flip/rotation of a (H, W, ...) array; 0 is the identity."""
    out = np.rot90(img, k % 4)
    return out[:, ::-1] if k >= 4 else out


def augment_crops(
    crops: np.ndarray, rng: np.random.Generator, flips: bool, channels: bool
) -> np.ndarray:
    """Transform each square crop of a uint8 (N, H, W, C) batch in place; returns ``crops``."""
    if not (flips or channels):
        return crops
    n, c = crops.shape[0], crops.shape[3]
    ks = rng.integers(0, 8, n) if flips else np.zeros(n, np.int64)
    perms = [rng.permutation(c) if channels else None for _ in range(n)]
    for b in range(n):
        img = dihedral(crops[b], int(ks[b]))
        if perms[b] is not None:
            img = img[..., perms[b]]
        crops[b] = img.copy() if np.shares_memory(img, crops) else img
    return crops
