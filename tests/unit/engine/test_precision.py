"""runtime.precision: auto picks bf16 only where the device computes it natively."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from n2n_core.cli import main as cli
from n2n_core.config.preset import load_preset
from n2n_core.engine import device as devmod
from n2n_core.engine.device import resolve_precision
from n2n_core.runs.folders import prepare_run
from n2n_core.training.loop import train_worker

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),
        ({"avx2", "amx_tile", "amx_bf16"}, "bf16"),
        ({"avx2", "avx512f", "avx512bw"}, "fp32"),  # bf16 only emulated: slower than fp32
        (set(), "fp32"),  # flags unreadable (not Linux)
    ],
)
def test_auto_on_cpu_follows_the_bf16_flags(monkeypatch, flags, want):
    monkeypatch.setattr(devmod, "cpu_flags", lambda: flags)
    assert resolve_precision(CPU, "auto") == want


@pytest.mark.parametrize(("cc", "want"), [((7, 0), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_on_cuda_needs_compute_capability_8(monkeypatch, cc, want):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: cc)
    assert resolve_precision(torch.device("cuda", 0), "auto") == want


def test_auto_on_other_devices_and_explicit_choices(monkeypatch):
    npu = SimpleNamespace(type="npu")  # torch knows "npu" only once torch_npu is imported
    # A 910B says it computes bf16; the runtime is asked (test_device_logic covers the 910A).
    monkeypatch.setattr(
        torch, "npu", SimpleNamespace(is_bf16_supported=lambda: True), raising=False
    )
    assert resolve_precision(npu, "auto") == "bf16"
    assert resolve_precision(torch.device("mps"), "auto") == "fp32"
    monkeypatch.setattr(devmod, "cpu_flags", lambda: {"avx512_bf16"})
    assert resolve_precision(CPU, "fp32") == "fp32"
    assert resolve_precision(CPU, "fp16") == "fp16"


def test_run_json_records_the_choice_and_validate_applies_math(
    monkeypatch, make_preset, tmp_path, val_dir, capsys
):
    monkeypatch.setattr(devmod, "cpu_flags", lambda: set())
    p = make_preset(runtime__precision="auto", train__steps=2, train__val_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    assert train_worker(run_dir) == "finished"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["precision"] == "fp32"
    assert "fp32" in (run_dir / "log.txt").read_text()

    modes = []
    monkeypatch.setattr(devmod, "apply_math_mode", lambda device, math: modes.append(math))
    snap = str(run_dir / "snapshots" / "final.safetensors")
    for extra in ([], ["--math", "high_performance"]):
        assert (
            cli.main(["validate", "--snapshot", snap, "--dataset-dir", str(val_dir), *extra]) == 0
        )
    assert modes == ["high_precision", "high_performance"]  # full fp32 unless asked
    assert "colour shift" in capsys.readouterr().out
