"""Neighbor2Neighbor: training pairs made from one noisy image (Huang et al., CVPR 2021).

The random neighbour sub-sampler splits a noisy image ``y`` into 2x2 cells and,
in every cell, picks two *adjacent* pixels (sharing an edge) at random: the first
goes to sub-image ``g1(y)``, the second to ``g2(y)``. Both are half-resolution
images of nearly the same scene with independent noise (the pixels differ), so
``g2(y)`` is a Noise2Noise target for ``g1(y)``. The small scene difference
between neighbours is corrected by the paper's regulariser:

    loss = ||f(g1(y)) - g2(y)||^2
         + gamma * ||f(g1(y)) - g2(y) - (g1(f(y)) - g2(f(y)))||^2

where ``f(y)`` (the network on the full noisy image) is computed without
gradient. ``gamma`` is the paper's 2 for Gaussian-like noise; as in the authors'
code, its weight rises linearly from 0 to ``gamma`` over training, so the network
first learns to denoise and is then pulled towards consistency.

The same cell choice is used for every channel (colour pixels stay whole), so it
works on grayscale and colour alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The 8 ordered pairs of edge-adjacent pixels in a 2x2 cell indexed 0 1 / 2 3.
NEIGHBOUR_PAIRS = torch.tensor(
    [[0, 1], [0, 2], [1, 0], [1, 3], [2, 0], [2, 3], [3, 1], [3, 2]], dtype=torch.long
)


def neighbour_choice(
    n: int, h: int, w: int, gen: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell pixel indices (i1, i2), each long (n, 1, h // 2, w // 2), with i1 != i2 adjacent."""
    pick = torch.randint(
        0, len(NEIGHBOUR_PAIRS), (n, 1, h // 2, w // 2), generator=gen, device=device
    )
    pairs = NEIGHBOUR_PAIRS.to(device)[pick]  # (n, 1, h/2, w/2, 2)
    return pairs[..., 0], pairs[..., 1]


def subsample(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The half-resolution sub-image of ``x`` (N, C, H, W) taking pixel ``index`` of every 2x2 cell."""
    n, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"sub-sampling needs even height and width, got {h}x{w}")
    cells = (
        x.reshape(n, c, h // 2, 2, w // 2, 2)
        .permute(0, 1, 2, 4, 3, 5)
        .reshape(n, c, h // 2, w // 2, 4)
    )
    idx = index.unsqueeze(-1).expand(n, c, h // 2, w // 2, 1)
    return torch.gather(cells, 4, idx).squeeze(4)


@dataclass
class NeighbourBatch:
    """A training step's input: the noisy crops and the sub-sampler's choice for them."""

    noisy: torch.Tensor
    i1: torch.Tensor
    i2: torch.Tensor


@dataclass
class NeighbourPrediction:
    """What the loss needs: f(g1(y)), g2(y), and g1(f(y)) - g2(f(y)) (no gradient)."""

    out: torch.Tensor
    target: torch.Tensor
    exp_diff: torch.Tensor


def neighbour_forward(net, batch: NeighbourBatch) -> NeighbourPrediction:
    with torch.no_grad():
        full = net(batch.noisy)
        exp_diff = subsample(full, batch.i1) - subsample(full, batch.i2)
    out = net(subsample(batch.noisy, batch.i1))
    return NeighbourPrediction(out, subsample(batch.noisy, batch.i2), exp_diff)


def regulariser_weight(gamma: float, progress: float) -> float:
    """The regulariser's weight at ``progress`` in [0, 1]: linear from 0 to ``gamma``."""
    return gamma * min(max(progress, 0.0), 1.0)


def neighbour_loss(pred: NeighbourPrediction, weight: float) -> torch.Tensor:
    """Reconstruction + ``weight`` x regulariser, in float32."""
    diff = pred.out.float() - pred.target.float()
    rec = torch.mean(diff**2)
    reg = torch.mean((diff - pred.exp_diff.float()) ** 2)
    return rec + weight * reg
