"""The baseline: a plain eager fp32 NCHW PyTorch port of the paper's network.

What a user would write from the paper's table without thinking about speed:
``nn.Conv2d`` / ``nn.LeakyReLU`` / ``nn.MaxPool2d`` / ``nn.Upsample`` modules,
NCHW tensors (no channels_last), default thread settings, ``torch.no_grad`` for
inference, a numpy data pipeline (float64 noise, one crop at a time) and the
textbook training step. ``n2n-core bench`` times it side by side with the
engine, so every speed-up it prints is against this. It ships in the package,
so an installed ``n2n-core bench`` has its baseline.

Weights are laid out like ``n2n_core.engine.network.UNet`` (same layer names), so the
two networks can share a state dict and compute the same function.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class PlainUNet(nn.Module):
    def __init__(self, channels: int = 3):
        super().__init__()
        self.enc_conv0 = conv(channels, 48)
        self.enc_conv1 = conv(48, 48)
        self.enc_conv2 = conv(48, 48)
        self.enc_conv3 = conv(48, 48)
        self.enc_conv4 = conv(48, 48)
        self.enc_conv5 = conv(48, 48)
        self.enc_conv6 = conv(48, 48)
        self.dec_conv5 = conv(96, 96)
        self.dec_conv5b = conv(96, 96)
        self.dec_conv4 = conv(144, 96)
        self.dec_conv4b = conv(96, 96)
        self.dec_conv3 = conv(144, 96)
        self.dec_conv3b = conv(96, 96)
        self.dec_conv2 = conv(144, 96)
        self.dec_conv2b = conv(96, 96)
        self.dec_conv1a = conv(96 + channels, 64)
        self.dec_conv1b = conv(64, 32)
        self.dec_conv1 = conv(32, channels)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        a, pool, up = self.act, self.pool, self.up
        x0 = x
        x = a(self.enc_conv0(x))
        p1 = pool(a(self.enc_conv1(x)))
        p2 = pool(a(self.enc_conv2(p1)))
        p3 = pool(a(self.enc_conv3(p2)))
        p4 = pool(a(self.enc_conv4(p3)))
        x = pool(a(self.enc_conv5(p4)))
        x = a(self.enc_conv6(x))
        x = torch.cat([up(x), p4], 1)
        x = a(self.dec_conv5b(a(self.dec_conv5(x))))
        x = torch.cat([up(x), p3], 1)
        x = a(self.dec_conv4b(a(self.dec_conv4(x))))
        x = torch.cat([up(x), p2], 1)
        x = a(self.dec_conv3b(a(self.dec_conv3(x))))
        x = torch.cat([up(x), p1], 1)
        x = a(self.dec_conv2b(a(self.dec_conv2(x))))
        x = torch.cat([up(x), x0], 1)
        x = a(self.dec_conv1a(x))
        x = a(self.dec_conv1b(x))
        return self.dec_conv1(x)


def random_batch(images: list[np.ndarray], batch: int, crop: int, rng: np.random.Generator):
    """A user's data pipeline: crops one by one, noise in float64 numpy, then to torch."""
    crops = []
    for _ in range(batch):
        img = images[rng.integers(len(images))]
        y = rng.integers(0, img.shape[0] - crop + 1)
        x = rng.integers(0, img.shape[1] - crop + 1)
        crops.append(img[y : y + crop, x : x + crop] / 255.0 - 0.5)
    clean = np.stack(crops).transpose(0, 3, 1, 2)
    sigma = rng.uniform(0, 50 / 255, size=(batch, 1, 1, 1))
    noisy = clean + rng.normal(size=clean.shape) * sigma
    sigma = rng.uniform(0, 50 / 255, size=(batch, 1, 1, 1))
    target = clean + rng.normal(size=clean.shape) * sigma
    return torch.tensor(noisy, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)


class PlainTrainer:
    """The textbook step: batch, forward, MSE, zero_grad, backward, Adam."""

    def __init__(
        self, images: list[np.ndarray], batch: int, crop: int, seed: int = 0, device="cpu"
    ):
        torch.manual_seed(seed)
        self.device = device
        self.net = PlainUNet(images[0].shape[2]).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
        self.loss_fn = nn.MSELoss()
        self.images, self.batch, self.crop = images, batch, crop
        self.rng = np.random.default_rng(seed)

    def step(self) -> float:
        noisy, target = random_batch(self.images, self.batch, self.crop, self.rng)
        noisy, target = noisy.to(self.device), target.to(self.device)
        pred = self.net(noisy)
        loss = self.loss_fn(pred, target)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()


def plain_infer(net: nn.Module, img: np.ndarray) -> np.ndarray:
    """Denoise one float32 (C, H, W) image (H, W multiples of 32) the plain way."""
    net.eval()
    device = next(net.parameters()).device
    with torch.no_grad():
        return net(torch.tensor(img[None]).to(device))[0].cpu().numpy()
