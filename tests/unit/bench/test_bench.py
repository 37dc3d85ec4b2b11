"""Smoke test of ``n2n-core bench``: it runs end to end and its JSON has every field.

No timing thresholds: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO

from n2n_core.bench import measure as bench

ROOT = REPO


@pytest.mark.slow
def test_bench_quick_json_has_every_field():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    exe = Path(sys.executable).parent / "n2n-core"
    out = subprocess.run(
        [str(exe), "bench", "--quick", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)  # exactly one JSON object on stdout
    assert r["quick"] is True
    for key in ("date", "cpu", "torch", "device", "cpu_count", "torch_threads"):
        assert key in r["machine"]
    assert r["matmul"]["fp32_gflops"] > 0
    assert r["plain_port"].endswith("plain_unet.py")

    impls = {(row["setting"], row["impl"]) for row in r["train"]}
    assert {("paper", "engine fp32"), ("paper", "plain"), ("quickstart", "plain")} <= impls
    for row in r["train"]:
        if "ms" in row:
            assert row["ms"] > 0 and row["gflops"] > 0 and 0 < row["matmul_fraction"]
            assert row["speedup"] > 0
    inf = {row["impl"]: row for row in r["infer"]["rows"]}
    assert {"engine fp32", "plain"} <= set(inf)
    assert inf["plain"]["speedup"] == 1.0
    assert r["infer"]["gflop"] > 0

    data = {row["impl"]: row["crops_per_s"] for row in r["data"]["rows"]}
    assert {"engine crops+noise", "engine crops (uint8)", "plain crops+noise"} <= set(data)
    assert all(v > 0 for v in data.values())

    assert r["profile"]["top"] and r["profile"]["top"][0]["self_ms_per_step"] > 0
    mem = r["memory"]
    assert mem["peak_rss_mb"] > 0 and "growth_mb" in mem and mem["steps"] == 4
    assert {g["goal"] for g in r["goals"]}
    md = bench.to_markdown(r)  # the human output renders the same report
    assert "## Training step" in md and "## Goals" in md


def test_conv_flops_matches_the_paper_figures():
    from n2n_core.engine.network import UNet

    net = UNet(3)
    # Issue 7: 273 GFLOP per training step at batch 4, 256x256; 137 GFLOP per 768x512 image.
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
