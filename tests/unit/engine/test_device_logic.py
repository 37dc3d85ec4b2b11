"""Device paths tested without a device: what a careful reading of the CUDA and Ascend
paths found, each checked on the CPU with stubs where a device is needed."""

from __future__ import annotations

import types

import pytest
import torch

from n2n_core.engine import device as devmod
from n2n_core.engine.compile import CompiledOrEager
from n2n_core.engine.network import UNet
from n2n_core.engine.snapshots import read_snapshot, restore_training_state, save_snapshot
from n2n_core.engine.sysmon import nvml_handle
from n2n_core.errors import UserError


def test_restored_adam_state_takes_each_parameters_layout(tmp_path):
    """CUDA's fused Adam needs params, grads and moments in one layout; snapshots store
    moments contiguous while the weights are channels-last."""
    torch.manual_seed(0)
    net = UNet(3).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.rand(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)).mean().backward()
    opt.step()
    path = save_snapshot(tmp_path / "s.safetensors", net, {"step": 1}, opt)
    net2 = UNet(3).to(memory_format=torch.channels_last)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3)
    restore_training_state(read_snapshot(path, weights_only=False), net2, opt2)
    checked = 0
    for p in net2.parameters():
        for v in opt2.state[p].values():
            if torch.is_tensor(v) and v.shape == p.shape:
                assert v.stride() == p.stride()
                checked += 1
    assert checked >= 2 * sum(1 for p in net2.parameters() if p.dim() == 4)


class _FakeCuda:
    def __init__(self, count: int, bf16: bool = True):
        self.count, self.calls = count, []
        self.bf16 = bf16

    def is_available(self):
        return self.count > 0

    def device_count(self):
        return self.count

    def set_device(self, d):
        self.calls.append(("set_device", str(d)))

    def is_bf16_supported(self):
        return self.bf16


def test_more_processes_than_devices_is_one_error_naming_both(monkeypatch):
    monkeypatch.setattr(devmod.torch, "cuda", _FakeCuda(1))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert devmod.resolve_device("cuda", 0) == torch.device("cuda", 0)
    with pytest.raises(UserError, match="2 processes on this node but 1 cuda device"):
        devmod.resolve_device("cuda", 1)  # never wrapped onto device 0
    with pytest.raises(UserError, match="2 processes but 1 cuda device"):
        devmod.check_device_count("cuda", 2)
    devmod.check_device_count("cuda", 1)
    devmod.check_device_count("cpu", 8)  # CPU ranks share the cores


def _npu(index: int = 0):
    # torch.device("npu") exists only with torch_npu installed: the code reads .type.
    return types.SimpleNamespace(type="npu", index=index)


def test_each_rank_sets_its_device_before_the_process_group(monkeypatch):
    npu = _FakeCuda(8)
    monkeypatch.setattr(devmod.torch, "npu", npu, raising=False)
    dev = _npu(3)
    devmod.set_rank_device(dev)
    assert len(npu.calls) == 1 and npu.calls[0][0] == "set_device"


@pytest.mark.parametrize(("supported", "want"), [(True, "bf16"), (False, "fp32"), (None, "fp32")])
def test_auto_precision_on_ascend_asks_the_runtime(monkeypatch, supported, want):
    npu = types.SimpleNamespace()
    if supported is not None:
        npu.is_bf16_supported = lambda: supported  # 910B: True; 910A: False
    monkeypatch.setattr(devmod.torch, "npu", npu, raising=False)
    assert devmod.resolve_precision(_npu(), "auto") == want


def test_npu_math_switches_leave_the_internal_format_alone(monkeypatch):
    config = types.SimpleNamespace(allow_internal_format="runtime default")
    npu = types.SimpleNamespace(
        config=config,
        matmul=types.SimpleNamespace(allow_hf32=False),
        conv=types.SimpleNamespace(allow_hf32=False),
    )
    monkeypatch.setattr(devmod.torch, "npu", npu, raising=False)
    devmod.apply_math_mode(_npu(), "high_performance")
    assert npu.matmul.allow_hf32 and npu.conv.allow_hf32
    assert config.allow_internal_format == "runtime default"
    del npu.conv  # an older torch_npu without the conv switch: no AttributeError
    devmod.apply_math_mode(_npu(), "high_precision")
    assert npu.matmul.allow_hf32 is False


def test_nvml_is_asked_by_the_devices_uuid():
    class Nvml:
        def __init__(self):
            self.asked = []

        def nvmlDeviceGetHandleByUUID(self, u):
            self.asked.append(("uuid", u))
            return u

        def nvmlDeviceGetHandleByIndex(self, i):
            self.asked.append(("index", i))
            return i

    nv = Nvml()
    # CUDA numbers this card 0 (fastest first); NVML, by PCI bus, calls it 1.
    assert nvml_handle(nv, 0, "GPU-5a1c0c1e-aaaa") == "GPU-5a1c0c1e-aaaa"
    assert nv.asked == [("uuid", "GPU-5a1c0c1e-aaaa")]


def test_a_backward_that_fails_to_compile_falls_back_to_eager():
    from torch._dynamo.backends.common import aot_autograd

    def broken_backward(gm, example_inputs):
        raise RuntimeError("ptxas fatal: backward kernel")

    torch._dynamo.reset()
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    compiled = torch.compile(
        net, backend=aot_autograd(fw_compiler=lambda gm, ex: gm, bw_compiler=broken_backward)
    )
    notes = []
    model = CompiledOrEager(net, compiled, notes.append)
    x = torch.rand(8, 4)
    with torch.no_grad():
        model(x)  # a first call without gradients cannot tell the backward compiles
    assert not notes
    loss = model(x).sum()
    loss.backward()  # eager after the probe: the run goes on
    assert notes and "backward kernel" in notes[0]
    assert all(p.grad is not None for p in net.parameters())
    torch._dynamo.reset()


def test_onnx_on_an_accelerator_it_cannot_use_is_refused():
    from n2n_core.evaluation.onnx import providers_for

    assert providers_for("cpu") == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(UserError, match="--engine onnx on cuda"):
            providers_for("cuda")
