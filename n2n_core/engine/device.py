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

# CPU feature flags that mean bf16 matrix math in hardware (without them oneDNN emulates
# bf16 with fp32 and conversions, slower than fp32); /proc/cpuinfo is read in one place,
# the run's provenance, which records them too.
from n2n_core.runs.provenance import BF16_CPU_FLAGS, cpu_flags

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
        return torch.device("cuda", _device_index("cuda", local_rank, torch.cuda.device_count()))
    if kind == "npu":
        try:
            importlib.import_module("torch_npu")
        except ImportError:
            raise UserError(
                "runtime.device: npu needs the torch_npu package (pip install 'n2n[npu]' on an Ascend host)"
            ) from None
        if not torch.npu.is_available():
            raise UserError("runtime.device: npu requested but no Ascend NPU is available")
        return torch.device("npu", _device_index("npu", local_rank, torch.npu.device_count()))
    if kind == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError("runtime.device: mps requested but Metal is not available")
        return torch.device("mps")
    raise UserError(f"runtime.device: unsupported device {kind!r}")


def _device_index(kind: str, local_rank: int, count: int) -> int:
    """This rank's device: one per process. Wrapping around would put two ranks on one
    device, where NCCL/HCCL fail deep inside; say it instead."""
    if local_rank >= count:
        procs = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1))
        raise UserError(
            f"runtime.nproc: {procs} processes on this node but {count} {kind} device(s) "
            f"visible (local rank {local_rank} has none); use --nproc {max(count, 1)} or fewer"
        )
    return local_rank


def device_count(kind: str) -> int:
    """How many devices of ``kind`` this process sees (cpu: no limit, counted as 0)."""
    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "npu":
        return torch.npu.device_count() if _npu_available() else 0
    return 0


def check_device_count(kind: str, nproc: int) -> None:
    """More processes on a node than devices is one error naming both, before anything
    starts (each rank takes its own device; two on one would fail inside NCCL/HCCL)."""
    if kind == "auto":
        kind = available_devices()[0]
    if kind not in ("cuda", "npu") or nproc <= 1:
        return
    count = device_count(kind)
    if nproc > count:
        raise UserError(
            f"runtime.nproc: {nproc} processes but {count} {kind} device(s) visible on this "
            f"node; use --nproc {max(count, 1)} or fewer (one process per device)"
        )


def set_rank_device(device: torch.device) -> None:
    """Make ``device`` this process's current device before the process group exists,
    so collectives and their buffers live there, not on device 0 of every rank."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif device.type == "npu":
        torch.npu.set_device(device)


def backend_for(device: torch.device) -> str:
    return BACKENDS.get(device.type, "gloo")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (so autocast to it is a speed-up)."""
    if device.type == "cpu":
        return any(f in cpu_flags() for f in BF16_CPU_FLAGS)
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)  # Ampere and later
    if device.type == "npu":
        # bf16 arrived with the 910B generation; the 910A computes fp16/fp32 only.
        supported = getattr(getattr(torch, "npu", None), "is_bf16_supported", None)
        try:
            return bool(supported()) if supported is not None else False
        except Exception:  # a runtime that cannot tell: fp32 is always right
            return False
    return False  # mps: fp32


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
        # Only the HF32 switches: allow_internal_format is a storage-format choice whose
        # default differs by Ascend series, so it stays the runtime's own.
        if npu is not None:
            for unit in ("matmul", "conv"):
                if hasattr(getattr(npu, unit, None), "allow_hf32"):
                    getattr(npu, unit).allow_hf32 = fast


def compute_device(kind: str, math: str = "high_precision", local_rank: int = 0) -> torch.device:
    """The device a command computes on, with its math mode set: one rule for every
    command (train, validate, evaluate, infer, bench), so a snapshot scores the same
    whichever command measures it."""
    device = resolve_device(kind, local_rank)
    apply_math_mode(device, math)
    return device


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
