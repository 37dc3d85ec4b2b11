"""Training losses and what each one seeks (the paper, Sec. 2).

- L2: the mean. Right for zero-mean noise (Gaussian, Poisson).
- L1: the median. Right for text overlay, where most samples of a pixel are clean.
- annealed L0: (|x - y| + eps)^gamma with gamma 2 -> 0 over training; seeks the
  mode, right for random-valued impulse noise where the clean value is the
  most frequent one but not the median.
"""

from __future__ import annotations

import torch

L0_EPS = 1e-8


def l0_gamma(progress: float) -> float:
    """Gamma of the annealed L0 loss: linear from 2 at the start to 0 at the end."""
    return 2.0 * (1.0 - min(max(progress, 0.0), 1.0))


def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((pred - target) ** 2)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.abs(pred - target))


def l0(pred: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.mean((torch.abs(pred - target) + L0_EPS) ** gamma)


def masked_loss(
    name: str, pred: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, progress: float
) -> torch.Tensor:
    """The named loss averaged over the pixels where ``keep`` (N, 1, H, W) is 1 only.

    Multiplicative Bernoulli noise: a target pixel that was dropped carries no
    information, so it gets no weight (and no gradient) at all.
    """
    diff = pred.float() - target.float()
    if name == "l2":
        err = diff * diff
    elif name == "l1":
        err = diff.abs()
    elif name == "l0":
        err = (diff.abs() + L0_EPS) ** l0_gamma(progress)
    else:
        raise ValueError(f"unknown loss {name!r}")
    keep = keep.float()
    return (err * keep).sum() / (keep.sum() * err.shape[1]).clamp_min(1.0)


def compute_loss(name: str, pred: torch.Tensor, target: torch.Tensor, progress: float):
    """The named loss in float32 (mixed precision keeps the loss itself in full precision)."""
    pred, target = pred.float(), target.float()
    if name == "l2":
        return l2(pred, target)
    if name == "l1":
        return l1(pred, target)
    if name == "l0":
        return l0(pred, target, l0_gamma(progress))
    raise ValueError(f"unknown loss {name!r}")
