"""Multiplicative Bernoulli noise: dropped pixels are black and the loss ignores them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from n2n_core.config.preset import load_preset
from n2n_core.engine.losses import compute_loss, masked_loss
from n2n_core.engine.noise import Bernoulli
from n2n_core.tasks.base import MaskedTarget
from n2n_core.tasks.image import ImageTask


def test_train_drops_whole_pixels_to_black_at_the_keep_rate():
    x = torch.rand((4, 3, 64, 64), generator=torch.Generator().manual_seed(0)) - 0.5
    y, keep = Bernoulli(train_keep=(0.3, 0.3)).train_masked(
        x, torch.Generator().manual_seed(1), np.random.default_rng(0)
    )
    assert keep.shape == (4, 1, 64, 64)
    assert float(keep.mean()) == pytest.approx(0.3, abs=0.02)
    kept = keep.bool().expand_as(x)
    assert torch.equal(y[kept], x[kept])
    assert bool((y[~kept] == -0.5).all())


def test_val_is_seeded_and_keeps_about_val_keep():
    x = np.zeros((3, 50, 50), np.float32)
    a = Bernoulli(val_keep=0.5).val(x, np.random.default_rng(0))
    b = Bernoulli(val_keep=0.5).val(x, np.random.default_rng(0))
    assert np.array_equal(a, b)
    assert np.mean(a[0] == 0) == pytest.approx(0.5, abs=0.05)
    assert np.array_equal(a[0] == -0.5, a[2] == -0.5)  # all channels of a pixel together


@pytest.mark.parametrize("loss", ["l2", "l1", "l0"])
def test_masked_loss_ignores_dropped_pixels(loss):
    g = torch.Generator().manual_seed(0)
    pred = torch.rand((2, 3, 8, 8), generator=g).requires_grad_()
    target = torch.rand((2, 3, 8, 8), generator=g)
    keep = (torch.rand((2, 1, 8, 8), generator=g) < 0.5).float()
    a = masked_loss(loss, pred, target, keep, 0.5)
    scrambled = torch.where(keep.bool(), target, torch.rand((2, 3, 8, 8), generator=g) * 9)
    again = masked_loss(loss, pred.detach(), scrambled, keep, 0.5)
    assert float(again) == pytest.approx(float(a.detach()))
    a.backward()
    assert bool((pred.grad * (1 - keep) == 0).all())
    assert bool((pred.grad * keep != 0).any())
    # over the kept pixels it is the plain loss
    k = keep.bool().expand_as(pred)
    plain = compute_loss(loss, pred[k].detach(), target[k], 0.5)
    assert float(a.detach()) == pytest.approx(float(plain), rel=1e-5)


def test_noisy_targets_carry_their_keep_mask(make_preset):
    noise = {"type": "bernoulli", "train_keep": [0.5, 0.5]}
    task = ImageTask(load_preset(make_preset(noise=noise)), torch.device("cpu"), load_val=False)
    inp, target = task.make_batch(0)
    assert isinstance(target, MaskedTarget)
    dropped = target.keep.bool().logical_not().expand_as(target.values)
    assert bool((target.values[dropped] == -0.5).all())
    assert float(task.loss(inp, target, 0)) >= 0
    n2c = ImageTask(
        load_preset(make_preset(noise=noise, targets="clean")), torch.device("cpu"), load_val=False
    )
    assert isinstance(n2c.make_batch(0)[1], torch.Tensor)
