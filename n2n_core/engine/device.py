"""Devices, precision and the distributed backend for each device.

``auto`` picks the best present device: cuda, then npu (Ascend, through the
optional ``torch_npu`` package), then mps, then cpu.
"""

from __future__ import annotations

import importlib
import os

import torch

from n2n_core.errors import UserError

# Its home is torch-free: the CLI needs it before torch loads.
from n2n_core.process.ompenv import cpu_cores as cpu_cores

BACKENDS = {"cpu": "gloo", "cuda": "nccl", "npu": "hccl", "mps": "gloo"}
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _npu_available() -> bool:
    try:
        importlib.import_module("torch_npu")
    except Exception:
        return False
    return bool(getattr(torch, "npu", None) and torch.npu.is_available())


def available_devices() -> list[str]:
    """The device kinds present here, best first (``auto`` picks the first); cpu is always last."""
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    if _npu_available():
        out.append("npu")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    return [*out, "cpu"]


def resolve_device(kind: str, local_rank: int = 0) -> torch.device:
    """A concrete torch.device for ``auto|cpu|cuda|npu|mps``; absent hardware is a UserError."""
    if kind == "auto":
        kind = available_devices()[0]
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError("runtime.device: cuda requested but no CUDA device is available")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    if kind == "npu":
        try:
            importlib.import_module("torch_npu")
        except ImportError:
            raise UserError(
                "runtime.device: npu needs the torch_npu package (pip install 'n2n[npu]' on an Ascend host)"
            ) from None
        if not torch.npu.is_available():
            raise UserError("runtime.device: npu requested but no Ascend NPU is available")
        return torch.device("npu", local_rank % max(torch.npu.device_count(), 1))
    if kind == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError("runtime.device: mps requested but Metal is not available")
        return torch.device("mps")
    raise UserError(f"runtime.device: unsupported device {kind!r}")


def backend_for(device: torch.device) -> str:
    return BACKENDS.get(device.type, "gloo")


# CPU feature flags (Linux /proc/cpuinfo names) that mean bf16 matrix math in hardware;
# without them oneDNN emulates bf16 with fp32 and conversions, slower than fp32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them; empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (so autocast to it is a speed-up)."""
    if device.type == "cpu":
        return any(f in cpu_flags() for f in BF16_CPU_FLAGS)
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)  # Ampere and later
    return device.type == "npu"  # Ascend cubes compute bf16; mps: fp32


def resolve_precision(device: torch.device, precision: str) -> str:
    """The precision a run uses: ``auto`` is bf16 where native, fp32 elsewhere."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def check_precision(device: torch.device, precision: str) -> None:
    """Fail early, with the key named, where a device cannot run a precision."""
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return
    try:
        with torch.autocast(device.type, dtype=dtype):
            a = torch.ones(2, 2, device=device)
            (a @ a).sum().item()
    except (RuntimeError, AssertionError, ValueError) as e:
        raise UserError(
            f"runtime.precision: {precision} is not supported on {device.type} ({str(e).splitlines()[0][:120]})"
        ) from None


def apply_math_mode(device: torch.device, math: str) -> None:
    """The seed's --op-select-implmode: high_precision keeps full fp32 math."""
    fast = math == "high_performance"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = fast
        torch.backends.cudnn.allow_tf32 = fast
        torch.backends.cudnn.benchmark = fast
    elif device.type == "npu":  # pragma: no cover - needs Ascend hardware
        npu = getattr(torch, "npu", None)
        if npu is not None and hasattr(npu, "config"):
            npu.config.allow_internal_format = fast
            if hasattr(npu, "matmul"):
                npu.matmul.allow_hf32 = fast
            if hasattr(npu.conv, "allow_hf32"):
                npu.conv.allow_hf32 = fast


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
        return
    if os.environ.get("OMP_NUM_THREADS"):
        # torch already took it: a sweep slot's share of the cores, or torchrun's split.
        return
    # Under torchrun several ranks share the cores; give each its share.
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
