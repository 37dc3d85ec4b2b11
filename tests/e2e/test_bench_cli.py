"""Smoke test of ``n2n-core bench``: it runs end to end and its JSON has every field.

No timing thresholds: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from n2n_core.bench import measure as bench


@pytest.mark.slow
def test_bench_quick_json_has_every_field(tmp_path):
    # HOME elsewhere: a quick bench measures nothing worth recording for `infer --engine auto`.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    exe = Path(sys.executable).parent / "n2n-core"
    out = subprocess.run(
        [str(exe), "bench", "--quick", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
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
        # Each row is a fraction of its own precision's matmul rate, measured beside it.
        if "ms" in row:
            key = f"{row['precision']}_gflops"
            assert key in r["matmul"] and row["matmul_gflops"] > 0
            assert 0 < row["data_share"] and row["data_ms"] > 0
    assert sum(bool(row.get("default")) for row in r["train"] if row["setting"] == "paper") == 1
    inf = {row["impl"]: row for row in r["infer"]["rows"]}
    assert {"torch", "plain"} <= set(inf)
    assert r["infer"]["infer_default"] in inf  # what `infer --engine auto` runs was measured
    assert set(r["infer"]["engines_ms"]) <= set(inf)
    assert inf["plain"]["speedup"] == 1.0
    assert r["infer"]["gflop"] > 0
    assert r["infer"]["recorded"] is False
    assert not (tmp_path / ".cache" / "n2n" / "infer-engine.json").exists()

    data = {row["impl"]: row["crops_per_s"] for row in r["data"]["rows"]}
    assert {"engine crops+noise", "engine crops (uint8)", "plain crops+noise"} <= set(data)
    assert all(v > 0 for v in data.values())
    assert r["data"]["noise_bound_crops_per_s"] > 0 and r["data"]["normal_per_s"] > 0

    assert r["profile"]["top"] and r["profile"]["top"][0]["self_ms_per_step"] > 0
    mem = r["memory"]
    assert mem["peak_rss_mb"] > 0 and "growth_mb" in mem and mem["steps"] == 4
    assert {g["goal"] for g in r["goals"]}
    md = bench.to_markdown(r)  # the human output renders the same report
    assert "## Training step" in md and "## Goals" in md
