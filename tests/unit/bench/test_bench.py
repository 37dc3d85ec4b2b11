"""The benchmark's parts: FLOP counts, the plain port, interleaved timing, compile fallback.

The whole ``n2n-core bench`` runs in tests/e2e/test_bench_cli.py.
"""

from __future__ import annotations

import numpy as np
import torch

from n2n_core.bench import measure as bench


def test_conv_flops_matches_the_paper_figures():
    from n2n_core.engine.network import UNet

    # On the meta device: the hooks count output shapes, no arithmetic is needed.
    net = UNet(3).to("meta")
    # The paper's figures: 273 GFLOP per training step at batch 4, 256x256; 137 GFLOP per
    # 768x512 image.
    assert round(3 * bench.conv_flops(net, (4, 3, 256, 256)) / 1e9) == 274
    assert round(bench.conv_flops(net, (1, 3, 512, 768)) / 1e9) == 137


def test_plain_port_computes_the_engine_network():
    from n2n_core.bench import plain_unet as plain
    from n2n_core.engine.network import UNet

    a, b = UNet(3), plain.PlainUNet(3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-6)


def test_interleaved_times_every_function():
    calls = []
    t = bench.interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        reps=3,
        device=torch.device("cpu"),
    )
    assert set(t) == {"a", "b"} and calls.count("a") == 4 and calls.count("b") == 4
    assert calls[2:4] == ["a", "b"] and calls[4:6] == ["b", "a"]  # order rotates


def test_compiled_or_eager_falls_back_when_compiling_fails():
    from n2n_core.engine.compile import CompiledOrEager

    def broken(x):
        raise RuntimeError("no compiler")

    notes = []
    net = torch.nn.Identity()
    m = CompiledOrEager(net, broken, notes.append)
    x = torch.ones(2)
    assert torch.equal(m(x), x) and torch.equal(m(x), x)
    assert len(notes) == 1 and "no compiler" in m.failed


def test_gaussian_noise_keeps_channels_last_and_is_seeded():
    from n2n_core.engine.noise import Gaussian

    x = torch.zeros(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    a = Gaussian((25.0, 25.0)).train(x, torch.Generator().manual_seed(1), rng)
    b = Gaussian((25.0, 25.0)).train(x, torch.Generator().manual_seed(1), rng)
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b)
    assert abs(a.std().item() - 25 / 255) < 0.03
