"""Augmentation of clean crops: exact pixel permutations, applied before both noisy copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from n2n_core.config.preset import load_preset
from n2n_core.data.augment import augment_crops, dihedral
from n2n_core.errors import UserError
from n2n_core.tasks.image import ImageTask


def test_dihedral_gives_eight_distinct_transforms():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    outs = {dihedral(img, k).tobytes() for k in range(8)}
    assert len(outs) == 8
    assert np.array_equal(dihedral(img, 0), img)


def test_augment_crops_permutes_pixels_and_channels():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    out = augment_crops(crops.copy(), np.random.default_rng(1), flips=True, channels=True)
    changed = 0
    for a, b in zip(crops, out, strict=True):
        # every output is one flip/rotation of its input with its channels permuted
        assert any(
            np.array_equal(dihedral(a, k)[..., list(p)], b)
            for k in range(8)
            for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
        )
        changed += not np.array_equal(a, b)
    assert changed >= 12
    same = augment_crops(crops.copy(), np.random.default_rng(1), flips=False, channels=False)
    assert np.array_equal(same, crops)


def test_both_noisy_copies_come_from_one_augmented_crop(make_preset):
    common = {"noise": {"type": "gaussian", "train_sigma": [25, 25]}, "train__batch": 8}
    plain = ImageTask(load_preset(make_preset(**common)), torch.device("cpu"), load_val=False)
    aug = ImageTask(
        load_preset(make_preset(**common, data__augment={"flips": True, "channels": True})),
        torch.device("cpu"),
        load_val=False,
    )
    clean = aug.clean_batch(3)
    noisy, target = aug.make_batch(3)
    # Each copy is the one augmented clean crop plus its own noise of sigma 25/255.
    for x in (noisy, target):
        assert abs(float((x - clean).std()) - 25 / 255) < 0.01
    assert float((noisy - target).std()) == pytest.approx(2**0.5 * 25 / 255, rel=0.05)
    # The same crops as without augmentation, transformed.
    assert not torch.equal(clean, plain.clean_batch(3))
    assert torch.allclose(clean.sum(dim=(1, 2, 3)), plain.clean_batch(3).sum(dim=(1, 2, 3)))


def test_augment_is_refused_where_it_does_not_apply(make_preset, tmp_path):
    p = make_preset(data__augment={"flips": True}, data__train=f"pairs:{tmp_path}")
    with pytest.raises(UserError, match="data.augment"):
        load_preset(p)


def test_shrink_to_averages_each_block():
    from n2n_core.data.images import shrink_to

    blocks = np.array([[10, 200], [60, 120]], np.uint8)
    img = np.kron(blocks, np.ones((3, 3), np.uint8))[..., None]  # 6x6, 3x3 blocks
    assert np.array_equal(shrink_to(img, 2)[..., 0], blocks)
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = shrink_to(rgb, 32)
    want = rgb.reshape(32, 2, 32, 2, 3).astype(float).mean(axis=(1, 3))
    assert out.shape == (32, 32, 3) and np.abs(out - want).max() <= 1.0


def test_min_scale_zooms_out_and_off_changes_nothing(make_preset):
    from n2n_core.data.sources import CropSampler

    # Stripes one pixel wide: a crop at scale 1 is all 0s and 255s; zoomed out,
    # neighbouring stripes are averaged into greys.
    img = np.zeros((256, 256, 3), np.uint8)
    img[:, ::2] = 255
    s = CropSampler([img], ["stripes"], 32)
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    plain = s.sample(16, rng())
    assert np.array_equal(plain, s.sample(16, rng(), min_scale=1.0))
    zoomed = s.sample(16, rng(), min_scale=0.5)
    assert zoomed.shape == plain.shape
    assert set(np.unique(plain)) == {0, 255}
    grey = ((zoomed > 20) & (zoomed < 235)).mean(axis=(1, 2, 3))
    assert (grey > 0.05).sum() >= 12 and grey.mean() > 0.25  # cut from regions beyond 32x32
    assert abs(float(zoomed.mean()) - 127.5) < 6  # averaging keeps the brightness
    assert np.array_equal(zoomed, s.sample(16, rng(), min_scale=0.5))  # a function of the seed


def test_noise_is_exact_on_zoomed_out_crops(make_preset):
    p = make_preset(
        noise={"type": "gaussian", "train_sigma": [25, 25]},
        train__batch=8,
        data__augment={"flips": True, "channels": True, "min_scale": 0.5},
    )
    task = ImageTask(load_preset(p), torch.device("cpu"), load_val=False)
    clean = task.clean_batch(3)
    noisy, target = task.make_batch(3)
    for x in (noisy, target):
        assert abs(float((x - clean).std()) - 25 / 255) < 0.01
    with pytest.raises(UserError, match="min_scale"):
        load_preset(make_preset(data__augment={"min_scale": 0.1}))
