"""Large images are scored and denoised in tiles: the network never sees more than a
bounded tile, whatever the picture's size; usual test-set images are scored whole."""

from __future__ import annotations

import numpy as np

from n2n_core.evaluation.protocol import AUTO_TILE_PIXELS, infer_float


def test_the_network_sees_bounded_tiles_of_a_large_image():
    seen = []

    def run(batch):
        seen.append(batch.shape)
        return batch * 0.5  # local, like a denoiser: tiling it changes nothing

    x = np.random.default_rng(0).random((3, 3000, 2200), dtype=np.float32)
    y = infer_float(run, x)
    assert y.shape == x.shape
    assert max(h * w for *_, h, w in seen) <= 1600 * 1600  # a tile with its margins
    np.testing.assert_allclose(y, x * 0.5, rtol=0, atol=0)


def test_usual_images_are_run_whole():
    seen = []

    def run(batch):
        seen.append(batch.shape)
        return batch

    infer_float(run, np.zeros((3, 512, 768), np.float32))  # Kodak
    infer_float(run, np.zeros((3, 1356, 2040), np.float32))  # DIV2K
    assert len(seen) == 2 and 1356 * 2040 <= AUTO_TILE_PIXELS
