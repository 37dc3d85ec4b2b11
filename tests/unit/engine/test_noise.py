import numpy as np
import pytest
import torch

from n2n_core.engine.noise import Gaussian, Identity, Impulse, Poisson, Text, text_overlay


def _gen(seed=0):
    return torch.Generator().manual_seed(seed), np.random.default_rng(seed)


def test_gaussian_val_statistics():
    x = np.zeros((3, 128, 128), np.float32)
    n = Gaussian().val(x, np.random.default_rng(0)) - x
    assert abs(n.mean()) < 1e-3
    assert n.std() == pytest.approx(25 / 255, rel=0.02)
    assert n.dtype == np.float32


def test_gaussian_val_is_seeded_and_unclipped():
    x = np.full((3, 16, 16), 0.5, np.float32)
    a = Gaussian().val(x, np.random.default_rng(7))
    b = Gaussian().val(x, np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert a.max() > 0.5  # noise is not clipped to the image range


def test_gaussian_train_sigma_is_per_image_uniform():
    g, r = _gen()
    x = torch.zeros(256, 3, 32, 32)
    n = Gaussian((0.0, 50.0)).train(x, g, r)
    sigmas = n.flatten(1).std(dim=1) * 255
    assert sigmas.min() < 5 and sigmas.max() > 45
    assert sigmas.mean().item() == pytest.approx(25, abs=3)  # mean of U[0, 50]
    assert abs(n.mean().item()) < 1e-3


def test_poisson_val_mean_and_variance():
    # poisson(lam (x + .5)) / lam - .5 has mean x and variance (x + .5) / lam.
    x = np.full((3, 128, 128), 0.1, np.float32)
    y = Poisson(val_lam=30).val(x, np.random.default_rng(0))
    assert y.mean() == pytest.approx(0.1, abs=2e-3)
    assert y.var() == pytest.approx(0.6 / 30, rel=0.05)


def test_poisson_train_mean_preserved():
    g, r = _gen(1)
    x = torch.full((64, 3, 32, 32), -0.2)
    y = Poisson((5.0, 50.0)).train(x, g, r)
    assert y.mean().item() == pytest.approx(-0.2, abs=5e-3)


def test_impulse_replaces_fraction_with_uniform_colours():
    x = np.zeros((3, 200, 200), np.float32)
    y = Impulse(val_p=0.5).val(x, np.random.default_rng(0))
    hit = np.any(y != 0, axis=0)
    assert hit.mean() == pytest.approx(0.5, abs=0.01)
    vals = y[:, hit]
    assert vals.min() >= -0.5 and vals.max() < 0.5
    assert vals.mean() == pytest.approx(0.0, abs=0.01)
    assert vals.var() == pytest.approx(1 / 12, rel=0.05)  # uniform on [-0.5, 0.5]


def test_impulse_train_per_image_p():
    g, r = _gen(2)
    x = torch.full((64, 3, 32, 32), 0.123)
    y = Impulse((0.0, 0.95)).train(x, g, r)
    frac = (y != 0.123).any(dim=1).float().flatten(1).mean(dim=1)
    assert frac.min() < 0.15 and frac.max() > 0.8


@pytest.mark.parametrize("coverage", [0.1, 0.25, 0.5])
def test_text_overlay_coverage(coverage):
    mask, colours = text_overlay(128, 128, coverage, np.random.default_rng(3))
    assert mask.mean() >= coverage - 0.01
    assert mask.mean() <= coverage + 0.15
    assert colours.shape == (3, 128, 128)


def test_text_leaves_uncovered_pixels_clean():
    x = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32) - 0.5
    y = Text(val_coverage=0.25).val(x, np.random.default_rng(1))
    same = np.all(y == x, axis=0)
    assert 0.6 < same.mean() < 0.8


def test_identity():
    x = np.ones((3, 4, 4), np.float32)
    assert np.array_equal(Identity().val(x, np.random.default_rng(0)), x)


def test_the_start_line_says_what_training_draws_not_only_validation():
    from n2n_core.engine.noise import Gaussian, Impulse

    assert Gaussian().describe() == "gaussian sigma 0..50 (validation 25)"
    assert Gaussian(train_sigma=(25, 25), val_sigma=25).describe() == "gaussian sigma=25"
    assert Impulse(train_p=(0.7, 0.7), val_p=0.5).describe() == "impulse p 0.7 (validation 0.5)"
