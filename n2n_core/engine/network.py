"""The paper's U-Net (Lehtinen et al. 2018, appendix table; NVlabs ``autoencoder``).

Encoder: 48 features, 3x3 convolutions, five 2x2 max-pools. Decoder: 96 features,
nearest-neighbour x2 upsampling with skip concatenation (the last one with the
raw input), then 64 -> 32 -> a linear output layer. LeakyReLU(0.1) everywhere
else; He-normal weights with zero biases, the output layer with gain 1.

``residual=True`` (preset ``network.residual``; not in the paper) adds the input
to the output, so the network learns the correction to its noisy input rather
than rebuilding the whole picture. What a short training run gets wrong first
is what a direct decoder must rebuild -- flat areas and the colour of large
regions -- and those pass straight through the residual: the five-minute
quickstart went from 30.05 to 30.69 dB on Kodak24 and its colour shift from
1.04 to 0.17 levels (benchmarks/RESULTS.md). Noise is zero-mean, so the
correction a Noise2Noise target teaches is the same either way.

``padding="replicate"`` (preset ``network.padding``; the paper zero-pads) repeats
the edge of each map instead of adding zeros. Why: trained on 64-pixel crops, the
deepest maps are 2x2 and 4x4, so every position there touches the zero border;
a flat region of a full-size image is deep inside, a regime training never
showed. A residual U-Net trained 22,000 steps that way turned flat blue and
green fields of 256 pixels and more into blobs 1,000+ levels off (red in the
sky of a CBSD68 photo), while 64-pixel fields stayed right. With replicate
padding a flat field looks the same inside as at its edge -- any flat picture
comes out flat at any size -- and the same run stays sound (worst 34 dB on
such fields). It costs about 1.3x the step time on the CPU (PyTorch's replicate
pad is slow on channels-last maps); training on 96-pixel crops instead (3x3
deepest maps, whose centre sees no padding) kept the zero-padded residual
network sound as well, scored higher, and is what the `photo` preset does.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from n2n_core.config.schema import PADDINGS

POOLINGS = 5
# A crop of 2**POOLINGS reaches the deepest convolution as a 1x1 map, so its
# off-centre taps only ever multiply zero padding and keep their random initial
# values; on a full-size image they add that noise back (a crop-32 model scored
# 30.8 dB on 32x32 tiles of a Kodak photo and 9.1 dB on 256x256 tiles). From twice
# that, every tap sees data.
SMALLEST_SOUND_CROP = 2 * 2**POOLINGS


def _conv(cin: int, cout: int, padding: str) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, padding_mode=padding)


class UNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        residual: bool = False,
        padding: str = "zeros",
    ):
        super().__init__()
        cin, cout = in_channels, out_channels or in_channels
        if residual and cin != cout:
            raise ValueError("a residual U-Net needs as many output channels as input channels")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}")
        self.in_channels, self.out_channels, self.residual = cin, cout, residual
        self.padding = padding
        self.enc_conv0 = _conv(cin, 48, padding)
        self.enc_conv1 = _conv(48, 48, padding)
        self.enc_conv2 = _conv(48, 48, padding)
        self.enc_conv3 = _conv(48, 48, padding)
        self.enc_conv4 = _conv(48, 48, padding)
        self.enc_conv5 = _conv(48, 48, padding)
        self.enc_conv6 = _conv(48, 48, padding)
        self.dec_conv5 = _conv(96, 96, padding)
        self.dec_conv5b = _conv(96, 96, padding)
        self.dec_conv4 = _conv(144, 96, padding)
        self.dec_conv4b = _conv(96, 96, padding)
        self.dec_conv3 = _conv(144, 96, padding)
        self.dec_conv3b = _conv(96, 96, padding)
        self.dec_conv2 = _conv(144, 96, padding)
        self.dec_conv2b = _conv(96, 96, padding)
        self.dec_conv1a = _conv(96 + cin, 64, padding)
        self.dec_conv1b = _conv(64, 32, padding)
        self.dec_conv1 = _conv(32, cout, padding)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                gain = 1.0 if name == "dec_conv1" else math.sqrt(2.0)
                nn.init.normal_(m.weight, 0.0, gain / math.sqrt(fan_in))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, 0.1)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2.0, mode="nearest")

        pool = F.max_pool2d
        x0 = x
        x = act(self.enc_conv0(x))
        p1 = pool(act(self.enc_conv1(x)), 2)
        p2 = pool(act(self.enc_conv2(p1)), 2)
        p3 = pool(act(self.enc_conv3(p2)), 2)
        p4 = pool(act(self.enc_conv4(p3)), 2)
        x = pool(act(self.enc_conv5(p4)), 2)
        x = act(self.enc_conv6(x))

        x = torch.cat([up(x), p4], dim=1)
        x = act(self.dec_conv5b(act(self.dec_conv5(x))))
        x = torch.cat([up(x), p3], dim=1)
        x = act(self.dec_conv4b(act(self.dec_conv4(x))))
        x = torch.cat([up(x), p2], dim=1)
        x = act(self.dec_conv3b(act(self.dec_conv3(x))))
        x = torch.cat([up(x), p1], dim=1)
        x = act(self.dec_conv2b(act(self.dec_conv2(x))))
        x = torch.cat([up(x), x0], dim=1)
        x = act(self.dec_conv1a(x))
        x = act(self.dec_conv1b(x))
        out = self.dec_conv1(x)
        return x0 + out if self.residual else out


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
