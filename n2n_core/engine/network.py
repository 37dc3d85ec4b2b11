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
        def conv(name: str, t: torch.Tensor, act: bool = True) -> torch.Tensor:
            y = getattr(self, name)(t)
            return F.leaky_relu(y, 0.1) if act else y

        def cat_conv(name: str, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            return conv(name, torch.cat([up, skip], dim=1))

        return unet_graph(x, conv, cat_conv, self.residual)


# The decoder's convolutions that read a concatenation [upsampled, skip], with the
# channels of the upsampled part: a low-precision path computes each as two
# convolutions on the two parts (the same sum, without the concatenation's copies).
CONCAT_CONVS = {
    "dec_conv5": 48,
    "dec_conv4": 96,
    "dec_conv3": 96,
    "dec_conv2": 96,
    "dec_conv1a": 96,
}


def _up(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, scale_factor=2.0, mode="nearest")


def unet_graph(x: torch.Tensor, conv, cat_conv, residual: bool) -> torch.Tensor:
    """The U-Net's wiring, the one place it is written down.

    ``conv(name, t, act=True)`` is one named convolution (then LeakyReLU(0.1) when
    ``act``); ``cat_conv(name, up, skip)`` the convolution of the concatenation
    [up, skip] and its LeakyReLU. :class:`UNet` computes them with its modules;
    :class:`Bf16Weights` (training) and :class:`FusedBf16` (inference) with bf16
    copies of the same weights.
    """
    pool = F.max_pool2d
    x0 = x
    x = conv("enc_conv0", x)
    p1 = pool(conv("enc_conv1", x), 2)
    p2 = pool(conv("enc_conv2", p1), 2)
    p3 = pool(conv("enc_conv3", p2), 2)
    p4 = pool(conv("enc_conv4", p3), 2)
    x = pool(conv("enc_conv5", p4), 2)
    x = conv("enc_conv6", x)

    x = conv("dec_conv5b", cat_conv("dec_conv5", _up(x), p4))
    x = conv("dec_conv4b", cat_conv("dec_conv4", _up(x), p3))
    x = conv("dec_conv3b", cat_conv("dec_conv3", _up(x), p2))
    x = conv("dec_conv2b", cat_conv("dec_conv2", _up(x), p1))
    x = cat_conv("dec_conv1a", _up(x), x0)
    x = conv("dec_conv1b", x)
    out = conv("dec_conv1", x, act=False)
    return x0 + out if residual else out


def _convs(net: UNet):
    return [(n, m) for n, m in net.named_children() if isinstance(m, nn.Conv2d)]


def _pad(t: torch.Tensor, padding: str) -> tuple[torch.Tensor, int]:
    """(input to convolve, the convolution's own zero padding) for a 3x3 convolution."""
    if padding == "zeros":
        return t, 1
    return F.pad(t, (1, 1, 1, 1), mode=padding), 0


SLOPE = 0.1  # LeakyReLU's negative slope, the paper's


def _conv_back(g, x, w, pad: int, bias: bool, need_x: bool):
    """(grad of x, of w, of the bias) of a 3x3 convolution, by ATen's own kernel."""
    return torch.ops.aten.convolution_backward(
        g,
        x,
        w,
        [w.shape[0]] if bias else None,
        [1, 1],
        [pad, pad],
        [1, 1],
        False,
        [0, 0],
        1,
        [need_x, True, bias],
    )


class _ConvLeaky(torch.autograd.Function):
    """LeakyReLU(conv(x)) as one oneDNN call forward (the activation a post-op, no second
    pass over the map); backward by ATen's kernels, the activation's from its output."""

    @staticmethod
    def forward(ctx, x, w, b, pad: int):
        y = torch.ops.mkldnn._convolution_pointwise.default(
            x, w, b, [pad, pad], [1, 1], [1, 1], 1, "leaky_relu", [SLOPE], ""
        )
        ctx.save_for_backward(x, w, y)
        ctx.pad = pad
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w, y = ctx.saved_tensors
        g = torch.ops.aten.leaky_relu_backward(gy, y, SLOPE, True)
        gx, gw, gb = _conv_back(g, x, w, ctx.pad, True, ctx.needs_input_grad[0])
        return gx, gw, gb, None


class _CatConvLeaky(torch.autograd.Function):
    """LeakyReLU(conv(cat(up, skip))) as conv(up) + conv(skip): the second convolution
    adds the first's output as a oneDNN post-op; then the activation in place."""

    @staticmethod
    def forward(ctx, up, skip, wu, ws, b, pad: int):
        pw = torch.ops.mkldnn._convolution_pointwise
        one = [1, 1]
        s = pw.default(skip, ws, None, [pad, pad], one, one, 1, "none", [], "")
        y = pw.binary(up, s, wu, b, [pad, pad], one, one, 1, "add", None, None, [], None)
        y = F.leaky_relu_(y, SLOPE)
        ctx.save_for_backward(up, skip, wu, ws, y)
        ctx.pad = pad
        return y

    @staticmethod
    def backward(ctx, gy):
        up, skip, wu, ws, y = ctx.saved_tensors
        g = torch.ops.aten.leaky_relu_backward(gy, y, SLOPE, True)
        gu, gwu, gb = _conv_back(g, up, wu, ctx.pad, True, ctx.needs_input_grad[0])
        gs, gws, _ = _conv_back(g, skip, ws, ctx.pad, False, ctx.needs_input_grad[1])
        return gu, gs, gwu, gws, gb, None


class Bf16Weights:
    """Training in bf16 on bf16 copies of the weights that live between steps.

    Autocast casts every weight to bf16 in each forward and each weight gradient
    back in each backward, and the concatenations of the decoder copy whole
    feature maps forward and (as sliced gradients) backward. Here the network runs
    on channels-last bf16 copies of its weights, refreshed after each optimizer
    step (:meth:`refresh`); the fp32 weights stay the master copy the optimizer
    updates and snapshots save (:meth:`grads_to_master` hands it the gradients).
    Each convolution of a concatenation runs as two convolutions on the two parts
    of its weight (:data:`CONCAT_CONVS`), so nothing is concatenated. Without that
    split the arithmetic is autocast's to the bit (a test holds it): the same bf16
    operands, fp32 accumulation inside oneDNN; the split rounds the two partial
    sums to bf16 before adding them.

    One process only: DDP reduces the gradients of the module's own parameters.
    """

    def __init__(self, net: UNet, split: bool = True, fused: bool | None = None):
        self.net = net
        self.split = split
        # oneDNN's fused convolution + LeakyReLU forward (where this PyTorch has it).
        self.fused = split and (fused_bf16_available() if fused is None else fused)
        self._parts: dict[str, tuple[list[torch.Tensor], torch.Tensor, nn.Conv2d]] = {}
        for name, m in _convs(net):
            n = len(self._split(name, m.weight))
            parts = [torch.empty(0) for _ in range(n)]
            self._parts[name] = (parts, torch.empty(0), m)
        self.refresh()

    def _split(self, name: str, w: torch.Tensor) -> list[torch.Tensor]:
        c = CONCAT_CONVS.get(name) if self.split else None
        return [w] if c is None else [w[:, :c], w[:, c:]]

    @torch.no_grad()
    def refresh(self) -> None:
        """bf16 copies of the current fp32 weights (after each optimizer step)."""
        for name, (parts, _, m) in self._parts.items():
            for k, w in enumerate(self._split(name, m.weight)):
                parts[k] = (
                    w.to(torch.bfloat16)
                    .contiguous(memory_format=torch.channels_last)
                    .requires_grad_()
                )
            self._parts[name] = (parts, m.bias.to(torch.bfloat16).requires_grad_(), m)

    def grads_to_master(self) -> None:
        """The bf16 copies' gradients, in fp32, onto the network's own weights."""
        for parts, b, m in self._parts.values():
            g = parts[0].grad if len(parts) == 1 else torch.cat([p.grad for p in parts], dim=1)
            # In the master weight's own layout: a fused Adam would copy it there otherwise.
            m.weight.grad = torch.empty_like(m.weight).copy_(g)
            m.bias.grad = b.grad.float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        padding = self.net.padding

        fused = self.fused

        def conv(name: str, t: torch.Tensor, act: bool = True) -> torch.Tensor:
            (w,), b, _ = self._parts[name]
            t, pad = _pad(t.to(torch.bfloat16), padding)
            if act and fused:
                return _ConvLeaky.apply(t, w, b, pad)
            y = F.conv2d(t, w, b, padding=pad)
            return F.leaky_relu(y, SLOPE) if act else y

        def cat_conv(name: str, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            if not self.split:
                return conv(name, torch.cat([up, skip.to(torch.bfloat16)], dim=1))
            (wu, ws), b, _ = self._parts[name]
            up, pad = _pad(up, padding)
            skip, _ = _pad(skip.to(torch.bfloat16), padding)
            if fused:
                return _CatConvLeaky.apply(up, skip, wu, ws, b, pad)
            y = F.conv2d(up, wu, b, padding=pad) + F.conv2d(skip, ws, None, padding=pad)
            return F.leaky_relu(y, SLOPE)

        out = unet_graph(x, conv, cat_conv, self.net.residual)
        return out.float()

    # The training loop treats the network through this object like the module itself.
    def __getattr__(self, name):
        return getattr(self.net, name)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def fused_bf16_available() -> bool:
    """Whether this PyTorch has oneDNN's convolution with fused activation (x86 builds)."""
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_convolution_pointwise"
    )


class FusedBf16:
    """Inference in bf16 with oneDNN's fused kernels: the engine ``torch-bf16``.

    Each convolution and its LeakyReLU are one oneDNN call (a post-op, no second pass
    over the map), the weights are bf16 and channels-last once, and a convolution of
    a concatenation is two convolutions, the second adding the first's output as a
    binary post-op, so nothing is concatenated. The output layer's result is taken to
    fp32 before the residual addition, as under autocast.
    """

    def __init__(self, net: UNet):
        self.net = net
        self.w: dict[str, tuple[torch.Tensor, ...]] = {}
        with torch.no_grad():
            for name, m in _convs(net):
                w = m.weight.detach().to(torch.bfloat16)
                c = CONCAT_CONVS.get(name)
                ws = [w] if c is None else [w[:, :c], w[:, c:]]
                cl = [x.contiguous(memory_format=torch.channels_last) for x in ws]
                self.w[name] = (*cl, m.bias.detach().to(torch.bfloat16))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pw = torch.ops.mkldnn._convolution_pointwise
        one, padding = [1, 1], self.net.padding

        def conv(name: str, t: torch.Tensor, act: bool = True) -> torch.Tensor:
            w, b = self.w[name]
            t, pad = _pad(t.to(torch.bfloat16), padding)
            attr, scalars = ("leaky_relu", [0.1]) if act else ("none", [])
            return pw.default(t, w, b, [pad, pad], one, one, 1, attr, scalars, "")

        def cat_conv(name: str, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            wu, ws, b = self.w[name]
            skip, pad = _pad(skip.to(torch.bfloat16), padding)
            up, _ = _pad(up, padding)
            y = pw.default(skip, ws, None, [pad, pad], one, one, 1, "none", [], "")
            # oneDNN fuses an add but not an add followed by leaky_relu: one in-place pass.
            y = pw.binary(up, y, wu, b, [pad, pad], one, one, 1, "add", None, None, [], None)
            return F.leaky_relu_(y, 0.1)

        x = x.contiguous(memory_format=torch.channels_last)
        return unet_graph(x, conv, cat_conv, self.net.residual).float()
