"""``infer --engine``: every engine gives the same picture, and ``auto`` takes this
machine's measured choice only while the machine and libraries are the ones measured."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from n2n_core.engine.network import UNet
from n2n_core.errors import UserError
from n2n_core.evaluation import engines
from n2n_core.evaluation.protocol import infer_float

CPU = torch.device("cpu")


@pytest.fixture
def choice_file(tmp_path, monkeypatch):
    path = tmp_path / "infer-engine.json"
    monkeypatch.setattr(engines, "CHOICE_FILE", path)
    monkeypatch.delenv("N2N_INFER_ENGINE", raising=False)
    return path


def test_every_installed_engine_denoises_the_same_picture():
    torch.manual_seed(0)
    net = UNet(3, residual=True).eval()
    for m in net.modules():  # small weights: a residual correction, as trained models give
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data *= 0.5
    img = 0.3 * np.sin(np.linspace(0, 6, 70, dtype=np.float32))[None, None].repeat(3, 0).repeat(
        45, 1
    )  # not a multiple of 32: the protocol pads and crops back
    ref = infer_float(engines.engine_runner(net, 3, CPU, "torch"), img)
    for engine in engines.CPU_ENGINES:
        if not engines.installed(engine):
            continue
        out = infer_float(engines.engine_runner(net, 3, CPU, engine), img)
        assert out.shape == img.shape and out.dtype == np.float32
        tol = 1e-4 if engine in engines.FP32_ENGINES else 0.02
        assert np.abs(out - ref).max() < tol, engine


def test_auto_takes_the_recorded_choice_only_for_the_same_machine(choice_file):
    usable = [e for e in engines.CPU_ENGINES if engines.installed(e)]
    slowest_first = {e: float(100 - i) for i, e in enumerate(usable)}
    best = engines.record_choice(slowest_first)
    assert best == usable[-1]
    assert engines.recorded_choice() == best and engines.auto_engine("cpu") == best
    record = json.loads(choice_file.read_text())
    assert record["choice"] == best and record["ms"] == slowest_first

    # Another CPU or another library version: measured anew, the rule until then.
    record["machine"]["torch"] = "0.0.0"
    choice_file.write_text(json.dumps(record))
    assert engines.recorded_choice() is None
    assert engines.auto_engine("cpu") in usable
    # A damaged or planted record is no record.
    choice_file.write_text("{not json")
    assert engines.recorded_choice() is None
    choice_file.unlink()
    choice_file.symlink_to("/dev/zero")
    assert engines.recorded_choice() is None
    choice_file.unlink()
    os.mkfifo(choice_file)  # would block a plain read forever
    assert engines.recorded_choice() is None


def test_auto_without_a_record_follows_the_cpu(choice_file, monkeypatch):
    monkeypatch.setattr(engines, "installed", lambda e: e in ("torch", "onnx"))
    assert engines.auto_engine("cpu") == "onnx"  # no native bf16: as before
    monkeypatch.setattr(engines, "installed", lambda e: True)
    assert engines.auto_engine("cpu") == "openvino"
    monkeypatch.setattr(engines, "installed", lambda e: e != "openvino")
    assert engines.auto_engine("cpu") == "torch-bf16"
    assert engines.auto_engine("cuda") == "torch"


def test_an_engine_missing_here_is_one_error_naming_it(monkeypatch):
    monkeypatch.setattr(engines, "installed", lambda e: e == "torch")
    with pytest.raises(UserError, match="--engine openvino: not available here"):
        engines.engine_runner(UNet(3), 3, CPU, "openvino")
