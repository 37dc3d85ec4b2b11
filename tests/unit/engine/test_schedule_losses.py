import math

import numpy as np
import pytest
import torch

from n2n_core.engine.losses import compute_loss, l0, l0_gamma, l1, l2
from n2n_core.engine.lr_schedule import learning_rate, rampdown_factor


def reference_lrate(i, iteration_count, ramp_down_perc, learning_rate):
    # NVlabs/noise2noise train.py compute_ramped_down_lrate, transcribed.
    ramp_down_start_iter = iteration_count * (1 - ramp_down_perc)
    if i >= ramp_down_start_iter:
        t = ((i - ramp_down_start_iter) / ramp_down_perc) / iteration_count
        smooth = (0.5 + np.cos(t * np.pi) / 2) ** 2
        return learning_rate * smooth
    return learning_rate


@pytest.mark.parametrize("total,perc", [(1000, 0.3), (500_000, 0.3), (77, 0.5), (10, 1.0)])
def test_rampdown_matches_reference(total, perc):
    for i in sorted(set(np.linspace(0, total, 50).astype(int).tolist() + [total - 1])):
        assert learning_rate(i, total, 3e-4, perc) == pytest.approx(
            reference_lrate(i, total, perc, 3e-4), rel=1e-12
        )


def test_rampdown_shape():
    assert rampdown_factor(0, 100, 0.3) == 1.0
    assert rampdown_factor(69, 100, 0.3) == 1.0
    assert rampdown_factor(70, 100, 0.3) == 1.0
    assert rampdown_factor(85, 100, 0.3) == pytest.approx(0.25)  # halfway: ((0.5 + 0)/1)^2
    assert rampdown_factor(100, 100, 0.3) == pytest.approx(0.0, abs=1e-12)
    assert rampdown_factor(50, 100, 0.0) == 1.0


def test_rampup():
    assert learning_rate(0, 100, 1.0, 0.0, rampup=0.1) == 0.0
    assert learning_rate(5, 100, 1.0, 0.0, rampup=0.1) == pytest.approx(0.5)
    assert learning_rate(10, 100, 1.0, 0.0, rampup=0.1) == 1.0


def test_l2_l1_values():
    p = torch.tensor([0.0, 1.0, 3.0])
    t = torch.tensor([1.0, 1.0, 1.0])
    assert l2(p, t).item() == pytest.approx((1 + 0 + 4) / 3)
    assert l1(p, t).item() == pytest.approx((1 + 0 + 2) / 3)


def test_l0_anneals_from_l2_to_counting():
    assert l0_gamma(0.0) == 2.0
    assert l0_gamma(0.5) == 1.0
    assert l0_gamma(1.0) == 0.0
    p, t = torch.tensor([0.0, 0.5]), torch.tensor([0.25, 0.5])
    assert l0(p, t, 2.0).item() == pytest.approx(((0.25 + 1e-8) ** 2 + (1e-8) ** 2) / 2)
    assert l0(p, t, 0.0).item() == pytest.approx(1.0)


def _argmin_constant(loss_name, samples, progress):
    """The constant prediction that minimises the loss over samples (grid search)."""
    grid = torch.linspace(-1, 1, 2001)
    vals = [
        compute_loss(loss_name, torch.full_like(samples, g.item()), samples, progress).item()
        for g in grid
    ]
    return grid[int(np.argmin(vals))].item()


def test_losses_seek_mean_median_mode():
    # Mostly 0.3 (the mode), a few outliers: L2 -> mean, L1 -> median, L0 (late) -> mode.
    samples = torch.tensor([0.3] * 4 + [-0.9, -0.8, 0.9, 1.0, 0.95, -0.5, 0.6])
    assert _argmin_constant("l2", samples, 0.0) == pytest.approx(samples.mean().item(), abs=2e-3)
    assert _argmin_constant("l1", samples, 0.0) == pytest.approx(samples.median().item(), abs=2e-3)
    assert _argmin_constant("l0", samples, 0.95) == pytest.approx(0.3, abs=2e-3)


def test_compute_loss_is_float32_under_bf16():
    p = torch.randn(4, dtype=torch.bfloat16)
    out = compute_loss("l2", p, torch.zeros(4), 0.0)
    assert out.dtype == torch.float32
    assert math.isfinite(out.item())
