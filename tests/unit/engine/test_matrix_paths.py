"""The fast paths of the matrix engine: same network, same answers.

- fp32 results stay bit for bit what the paper's wiring computes;
- kept bf16 weights without the split are autocast to the bit, step after step;
- the split decoder and the fused inference path stay within bf16 rounding;
- a run takes the kept-bf16 path exactly where it was measured (CPU, one process).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from n2n_core.engine.network import Bf16Weights, FusedBf16, UNet, fused_bf16_available
from n2n_core.training.step import keep_bf16_weights

CPU = torch.device("cpu")


def paper_forward(net: UNet, x: torch.Tensor) -> torch.Tensor:
    """The wiring written out as the reference does, op by op (before unet_graph)."""

    def act(t):
        return F.leaky_relu(t, 0.1)

    def up(t):
        return F.interpolate(t, scale_factor=2.0, mode="nearest")

    pool = F.max_pool2d
    x0 = x
    x = act(net.enc_conv0(x))
    p1 = pool(act(net.enc_conv1(x)), 2)
    p2 = pool(act(net.enc_conv2(p1)), 2)
    p3 = pool(act(net.enc_conv3(p2)), 2)
    p4 = pool(act(net.enc_conv4(p3)), 2)
    x = pool(act(net.enc_conv5(p4)), 2)
    x = act(net.enc_conv6(x))
    x = torch.cat([up(x), p4], dim=1)
    x = act(net.dec_conv5b(act(net.dec_conv5(x))))
    x = torch.cat([up(x), p3], dim=1)
    x = act(net.dec_conv4b(act(net.dec_conv4(x))))
    x = torch.cat([up(x), p2], dim=1)
    x = act(net.dec_conv3b(act(net.dec_conv3(x))))
    x = torch.cat([up(x), p1], dim=1)
    x = act(net.dec_conv2b(act(net.dec_conv2(x))))
    x = torch.cat([up(x), x0], dim=1)
    x = act(net.dec_conv1a(x))
    x = act(net.dec_conv1b(x))
    out = net.dec_conv1(x)
    return x0 + out if net.residual else out


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("padding", ["zeros", "replicate"])
def test_fp32_forward_is_the_paper_wiring_to_the_bit(residual, padding):
    torch.manual_seed(0)
    net = UNet(3, residual=residual, padding=padding).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 96).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(net(x), paper_forward(net, x))


def _steps(kept: bool | None, split: bool, steps: int = 3, residual: bool = True):
    """Losses and final weights of a few Adam steps in bf16 (kept weights or autocast)."""
    torch.manual_seed(0)
    net = UNet(3, residual=residual).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    bf = Bf16Weights(net, split=split) if kept else None
    losses = []
    for _ in range(steps):
        x = torch.randn(2, 3, 64, 64, generator=g).contiguous(memory_format=torch.channels_last)
        y = x + 0.1 * torch.randn(2, 3, 64, 64, generator=g)
        if bf is not None:
            pred = bf(x)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                pred = net(x)
        loss = F.mse_loss(pred, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if bf is not None:
            bf.grads_to_master()
        opt.step()
        if bf is not None:
            bf.refresh()
        losses.append(loss.item())
    return losses, [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("residual", [False, True])
def test_kept_bf16_weights_without_split_are_autocast_to_the_bit(residual):
    la, wa = _steps(kept=False, split=False, residual=residual)
    lk, wk = _steps(kept=True, split=False, residual=residual)
    assert la == lk
    assert all(torch.equal(a, b) for a, b in zip(wa, wk, strict=True))


def test_split_decoder_trains_like_autocast_within_bf16_rounding():
    torch.manual_seed(0)
    w0 = torch.cat([p.detach().flatten() for p in UNet(3, residual=True).parameters()])
    la, wa = _steps(kept=False, split=False, steps=4)
    ls, ws = _steps(kept=True, split=True, steps=4)
    assert ls[0] == pytest.approx(la[0], rel=2e-2)
    assert ls[-1] == pytest.approx(la[-1], rel=5e-2)
    assert all(s.dtype == torch.float32 for s in ws)  # the master copy stays fp32
    # The same updates up to rounding: Adam moves each weight by ~lr a step, the same way.
    da = torch.cat([a.flatten() for a in wa]) - w0
    ds = torch.cat([s.flatten() for s in ws]) - w0
    assert F.cosine_similarity(da, ds, dim=0).item() > 0.95
    assert (da - ds).abs().max().item() <= 2 * 4 * 1e-3


@pytest.mark.skipif(not fused_bf16_available(), reason="this PyTorch has no oneDNN fusion")
@pytest.mark.parametrize("padding", ["zeros", "replicate"])
def test_fused_inference_matches_fp32_within_bf16_rounding(padding):
    torch.manual_seed(0)
    net = UNet(3, residual=True, padding=padding).eval()
    # A smooth picture and a small correction, as a trained residual denoiser gives.
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data *= 0.5
    x = 0.3 * torch.sin(torch.linspace(0, 6, 96)).expand(1, 3, 64, 96).contiguous()
    with torch.no_grad():
        ref = net(x)
        out = FusedBf16(net)(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    err = (out - ref).abs()
    assert err.max().item() < 0.02  # 5 levels of 255 at worst
    assert err.mean().item() < 2e-3  # half a level on average


@pytest.mark.parametrize(
    ("device", "precision", "world", "compiled", "want"),
    [
        ("cpu", "bf16", 1, False, True),
        ("cpu", "fp32", 1, False, False),  # fp32 stays the exact path
        ("cpu", "bf16", 2, False, False),  # DDP reduces the module's own gradients
        ("cpu", "bf16", 1, True, False),
        ("cuda", "bf16", 1, False, False),  # not measured there: autocast as before
    ],
)
def test_where_runs_keep_bf16_weights(device, precision, world, compiled, want):
    assert keep_bf16_weights(torch.device(device), precision, world, compiled) is want


def test_a_bf16_run_snapshots_fp32_master_weights(make_preset, tmp_path):
    from n2n_core.config.preset import load_preset
    from n2n_core.engine.snapshots import load_network
    from n2n_core.runs.folders import prepare_run
    from n2n_core.training.loop import train_worker

    p = make_preset(runtime__precision="bf16", train__steps=3, train__val_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    assert train_worker(run_dir) == "finished"
    net, _ = load_network(str(run_dir / "snapshots" / "final.safetensors"), CPU)
    w = [p for p in net.parameters()]
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in w)
    assert np.isfinite(sum(float(p.detach().abs().sum()) for p in w))


def test_kept_bf16_training_resumes_from_a_snapshot_to_the_bit(tmp_path):
    """Stop after 2 steps, resume from the snapshot, take 2 more: the same weights as 4 at once
    (the bf16 copies are remade from the fp32 master weights the snapshot holds)."""
    from n2n_core.engine.snapshots import read_snapshot, restore_training_state, save_snapshot
    from n2n_core.training.step import make_optimizer

    def setup():
        torch.manual_seed(0)
        net = UNet(3, residual=True).to(memory_format=torch.channels_last)
        return net, make_optimizer(net, 1e-3, CPU, kept_bf16=True)

    def steps(net, opt, first, n):
        bf = Bf16Weights(net)
        for k in range(first, first + n):
            g = torch.Generator().manual_seed(k)
            x = torch.randn(2, 3, 64, 64, generator=g).contiguous(memory_format=torch.channels_last)
            loss = F.mse_loss(bf(x), x + 0.1 * torch.randn(2, 3, 64, 64, generator=g))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            bf.grads_to_master()
            opt.step()
            bf.refresh()

    net, opt = setup()
    steps(net, opt, 0, 4)
    whole = [p.detach().clone() for p in net.parameters()]

    net, opt = setup()
    steps(net, opt, 0, 2)
    save_snapshot(tmp_path / "s.safetensors", net, {"step": 2}, opt)
    net, opt = setup()
    restore_training_state(read_snapshot(tmp_path / "s.safetensors", weights_only=False), net, opt)
    steps(net, opt, 2, 2)
    assert all(torch.equal(a, b) for a, b in zip(whole, net.parameters(), strict=True))


@pytest.mark.skipif(not fused_bf16_available(), reason="this PyTorch has no oneDNN fusion")
@pytest.mark.parametrize("padding", ["zeros", "replicate"])
def test_fused_training_kernels_give_autograds_gradients(padding):
    """The hand-written backward of the fused convolutions, in fp32 (where the two are
    the same arithmetic up to summation order), against autograd of the plain ops."""
    from n2n_core.engine.network import _CatConvLeaky, _ConvLeaky, _pad

    g = torch.Generator().manual_seed(0)

    def t(*shape):
        x = torch.randn(*shape, generator=g)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.requires_grad_()

    x, w, b = t(2, 8, 16, 16), t(6, 8, 3, 3), t(6)
    up, skip, wu, ws = t(2, 8, 16, 16), t(2, 4, 16, 16), t(6, 8, 3, 3), t(6, 4, 3, 3)
    gy = torch.randn(2, 6, 16, 16, generator=g)

    def grads(out, inputs):
        return torch.autograd.grad(out, inputs, gy, retain_graph=True)

    xp, pad = _pad(x, padding)
    mine = grads(_ConvLeaky.apply(xp, w, b, pad), (x, w, b))
    ref = grads(F.leaky_relu(F.conv2d(xp, w, b, padding=pad), 0.1), (x, w, b))
    for a, r in zip(mine, ref, strict=True):
        assert torch.allclose(a, r, atol=1e-4, rtol=1e-4)

    (upp, pad), (skp, _) = _pad(up, padding), _pad(skip, padding)
    ins = (up, skip, wu, ws, b)
    mine = grads(_CatConvLeaky.apply(upp, skp, wu, ws, b, pad), ins)
    w_cat = torch.cat([wu, ws], dim=1)
    ref = grads(F.leaky_relu(F.conv2d(torch.cat([upp, skp], 1), w_cat, b, padding=pad), 0.1), ins)
    for a, r in zip(mine, ref, strict=True):
        assert torch.allclose(a, r, atol=1e-4, rtol=1e-4)
