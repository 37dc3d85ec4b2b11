"""System and accelerator metrics of a training run: the ``sys`` records.

Each rank that trains runs a :class:`SysMonitor`. A daemon thread samples every
``runtime.sys_every`` seconds: machine CPU %, the process's RSS, RAM used, and
for the rank's own device its utilisation, memory, temperature and power (NVML
on NVIDIA through the optional ``nvidia-ml-py``, ``npu-smi info`` on Ascend).
The training thread only adds two clock reads per step (data wait, step time).

Only rank 0 writes (docs/ARCHITECTURE.md), so the other ranks' numbers travel to it at the
next log step: the log step's ``all_reduce`` carries a "sample due" flag, so
every rank agrees on the same step, and then one ``all_gather`` of a fixed-length
float vector per rank (no pickling) brings every rank's sample to rank 0, which
writes one ``sys`` record holding all ranks. A sensor that is missing or fails
is left out of the record; it is never an error.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from n2n_core.runs.records import DeviceStats, RankStats, SysRecord

MB = 1024.0 * 1024.0
NPU_SMI_TIMEOUT_S = 5.0
# The longest sampling interval: ``threading.Event.wait`` cannot arm a timer much past
# this (inf or 1e12 s is an OverflowError on the sampling thread).
MAX_INTERVAL_S = 86400.0


def sane_interval(interval: float) -> float:
    """``interval`` as the monitor uses it: not a number or <= 0 is off (0), at most a day."""
    try:
        x = float(interval)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if math.isnan(x) or x <= 0:
        return 0.0
    return min(x, MAX_INTERVAL_S)


@dataclass(frozen=True)
class SysSummary:
    """What one glance needs from a sys record: the busiest, fullest, hottest, slowest."""

    ranks: int
    devices: int
    util_pct: float | None  # mean over devices
    mem_used_mb: float | None  # the fullest device
    mem_total_mb: float | None
    temp_c: float | None  # the hottest
    power_w: float | None  # all devices together
    data_wait: float | None  # the rank that waits most
    slowest_rank: int | None
    slowest_ms: float | None
    fastest_ms: float | None
    rss_mb: float | None  # the largest process
    cpu_pct: float | None  # the busiest machine


def summarize_sys(rec: SysRecord) -> SysSummary:
    devs = [dv for r in rec.ranks for dv in r.devices]

    def vals(xs) -> list[float]:
        return [x for x in xs if x is not None]

    util = vals(dv.util_pct for dv in devs)
    fullest = max(
        (dv for dv in devs if dv.mem_used_mb is not None),
        key=lambda dv: dv.mem_used_mb / (dv.mem_total_mb or dv.mem_used_mb or 1),
        default=None,
    )
    power = vals(dv.power_w for dv in devs)
    timed = [r for r in rec.ranks if r.ms_per_step is not None]
    slowest = max(timed, key=lambda r: r.ms_per_step, default=None)
    return SysSummary(
        ranks=len(rec.ranks),
        devices=len(devs),
        util_pct=sum(util) / len(util) if util else None,
        mem_used_mb=fullest.mem_used_mb if fullest else None,
        mem_total_mb=fullest.mem_total_mb if fullest else None,
        temp_c=max(vals(dv.temp_c for dv in devs), default=None),
        power_w=sum(power) if power else None,
        data_wait=max(vals(r.data_wait for r in rec.ranks), default=None),
        slowest_rank=slowest.rank if slowest else None,
        slowest_ms=slowest.ms_per_step if slowest else None,
        fastest_ms=min((r.ms_per_step for r in timed), default=None),
        rss_mb=max(vals(r.rss_mb for r in rec.ranks), default=None),
        cpu_pct=max(vals(r.cpu_pct for r in rec.ranks), default=None),
    )


# ---------------------------------------------------------------------------
# the vector that travels between ranks (fixed length, NaN = absent)

_HOST = ("cpu_pct", "rss_mb", "ram_used_mb", "ram_total_mb", "data_wait", "ms_per_step")
_DEV = ("util_pct", "mem_used_mb", "mem_total_mb", "temp_c", "power_w")
VECTOR_LEN = len(_HOST) + 1 + len(_DEV)


def to_vector(r: RankStats) -> list[float]:
    nan = float("nan")
    v = [nan if getattr(r, k) is None else float(getattr(r, k)) for k in _HOST]
    dev = r.devices[0] if r.devices else None
    v.append(float(dev.index) if dev else -1.0)
    v += [nan if dev is None or getattr(dev, k) is None else float(getattr(dev, k)) for k in _DEV]
    return v


def from_vector(rank: int, v: list[float], device_type: str) -> RankStats:
    def opt(x: float) -> float | None:
        return x if math.isfinite(x) else None

    host = {k: opt(x) for k, x in zip(_HOST, v[: len(_HOST)], strict=True)}
    index = v[len(_HOST)]
    devices: tuple[DeviceStats, ...] = ()
    if index >= 0:
        dev = {k: opt(x) for k, x in zip(_DEV, v[len(_HOST) + 1 :], strict=True)}
        devices = (DeviceStats(index=int(index), type=device_type, **dev),)
    return RankStats(rank=rank, devices=devices, **host)


# ---------------------------------------------------------------------------
# sensors


def host_stats() -> dict[str, float]:
    """Machine CPU % since the previous call, process RSS and RAM used/total (psutil)."""
    try:
        import psutil
    except ImportError:
        return {}
    vm = psutil.virtual_memory()
    return {
        "cpu_pct": float(psutil.cpu_percent(None)),
        "rss_mb": psutil.Process().memory_info().rss / MB,
        "ram_used_mb": (vm.total - vm.available) / MB,
        "ram_total_mb": vm.total / MB,
    }


def cuda_uuid(local_index: int) -> str | None:
    """The UUID of ``cuda:local_index`` as CUDA sees it (``GPU-...``), or None."""
    try:
        import torch

        uuid = getattr(torch.cuda.get_device_properties(local_index), "uuid", None)
    except Exception:
        return None
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def nvml_handle(nvml, local_index: int, uuid: str | None = None):
    """NVML's handle for ``cuda:local_index``.

    By the device's UUID where CUDA tells it: CUDA numbers devices fastest first,
    NVML by PCI bus, so on a host with mixed GPUs the same index names two
    different cards. Without a UUID, through CUDA_VISIBLE_DEVICES's renumbering."""
    if uuid:
        return nvml.nvmlDeviceGetHandleByUUID(uuid)
    visible = [s.strip() for s in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if s]
    if local_index < len(visible):
        v = visible[local_index]
        if v.isdigit():
            return nvml.nvmlDeviceGetHandleByIndex(int(v))
        return nvml.nvmlDeviceGetHandleByUUID(v)
    return nvml.nvmlDeviceGetHandleByIndex(local_index)


def nvml_device_stats(nvml, handle, index: int) -> DeviceStats:
    """One GPU's readings; a query the driver refuses leaves that field out."""

    def ask(fn, *args):
        try:
            return fn(handle, *args)
        except nvml.NVMLError:
            return None

    util = ask(nvml.nvmlDeviceGetUtilizationRates)
    mem = ask(nvml.nvmlDeviceGetMemoryInfo)
    temp = ask(nvml.nvmlDeviceGetTemperature, nvml.NVML_TEMPERATURE_GPU)
    power = ask(nvml.nvmlDeviceGetPowerUsage)  # milliwatts
    return DeviceStats(
        index=index,
        type="cuda",
        util_pct=None if util is None else float(util.gpu),
        mem_used_mb=None if mem is None else mem.used / MB,
        mem_total_mb=None if mem is None else mem.total / MB,
        temp_c=None if temp is None else float(temp),
        power_w=None if power is None else power / 1000.0,
    )


# ``npu-smi info``: a card row ("| 0  910B | OK | 68.8  36  0 / 0 |") is followed by
# one row per chip ("| 0  | 0000:C1:00.0 | 0  924 / 15665  0 / 32768 |").
_NPU_ROW = re.compile(r"^\|\s*(\d+)\s+(\S+)\s*\|\s*(\S+)\s*\|\s*(\S+)\s+(\S+)")
_CHIP_ROW = re.compile(
    r"^\|\s*(\d+)(?:\s+\d+)?\s*\|\s*([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)\s*\|"
    r"\s*(\S+)\s+(\d+)\s*/\s*(\d+)(?:\s+(\d+)\s*/\s*(\d+))?"
)


def _float_or_none(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None  # "NA", "-"
    return v if math.isfinite(v) else None


def parse_npu_smi(text: str) -> list[DeviceStats]:
    """Every chip of ``npu-smi info`` in order, as devices 0, 1, ...

    Memory is the chip's HBM where it reports some (910), else its
    Memory-Usage column (310P); power and temperature are the card's.
    """
    out: list[DeviceStats] = []
    power = temp = None
    for line in text.splitlines():
        m = _CHIP_ROW.match(line)
        if m:
            used, total = float(m.group(4)), float(m.group(5))
            if m.group(7) is not None and float(m.group(7)) > 0:
                used, total = float(m.group(6)), float(m.group(7))
            out.append(
                DeviceStats(
                    index=len(out),
                    type="npu",
                    util_pct=_float_or_none(m.group(3)),
                    mem_used_mb=used,
                    mem_total_mb=total if total > 0 else None,
                    temp_c=temp,
                    power_w=power,
                )
            )
            continue
        m = _NPU_ROW.match(line)
        if m and m.group(3) not in ("Health", "Bus-Id"):
            power, temp = _float_or_none(m.group(4)), _float_or_none(m.group(5))
    return out


def npu_device_stats(local_index: int, run=subprocess.run) -> DeviceStats | None:
    """The Ascend chip behind ``npu:local_index`` (ASCEND_RT_VISIBLE_DEVICES renumbers)."""
    exe = shutil.which("npu-smi")
    if exe is None:
        return None
    try:
        res = run([exe, "info"], capture_output=True, text=True, timeout=NPU_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    chips = parse_npu_smi(res.stdout)
    visible = os.environ.get("ASCEND_RT_VISIBLE_DEVICES", "").split(",")
    physical = local_index
    if local_index < len(visible) and visible[local_index].strip().isdigit():
        physical = int(visible[local_index])
    if physical >= len(chips):
        return None
    c = chips[physical]
    return DeviceStats(
        local_index, "npu", c.util_pct, c.mem_used_mb, c.mem_total_mb, c.temp_c, c.power_w
    )


class DeviceProbe:
    """Reads the one device a rank trains on; silently reads nothing where it cannot."""

    def __init__(self, device_type: str, index: int):
        self.type, self.index = device_type, index
        self._nvml = None
        self._handle = None
        if device_type == "cuda":
            try:
                import pynvml

                pynvml.nvmlInit()
                self._handle = nvml_handle(pynvml, index, cuda_uuid(index))
                self._nvml = pynvml
            except Exception:  # no library, no driver, or a device NVML does not know
                self._nvml = None

    def read(self) -> DeviceStats | None:
        if self._nvml is not None:
            return nvml_device_stats(self._nvml, self._handle, self.index)
        if self.type == "npu":
            return npu_device_stats(self.index)
        return None

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None


# ---------------------------------------------------------------------------
# the monitor one rank runs


class SysMonitor:
    """Samples on a daemon thread; the loop reports step and data-wait times to it.

    ``interval <= 0`` turns it off: :meth:`due` is then always False.
    """

    def __init__(self, rank: int, device_type: str, device_index: int | None, interval: float):
        self.rank = rank
        self.device_type = device_type
        self.interval = sane_interval(interval)
        self._lock = threading.Lock()
        self._sample: dict[str, Any] | None = None
        self._fresh = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe = (
            DeviceProbe(device_type, device_index)
            if device_index is not None and self.interval > 0
            else None
        )
        self._step_s = 0.0
        self._wait_s = 0.0
        self._steps = 0
        self._t_step = 0.0
        self._wait_pending = 0.0
        self._paused = False

    def start(self) -> SysMonitor:
        if self.interval > 0:
            host_stats()  # the first CPU % reading is meaningless: prime it
            self._thread = threading.Thread(target=self._run, name="n2n-sys", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            sample: dict[str, Any] = dict(host_stats())
            dev = self._probe.read() if self._probe else None
            sample["devices"] = (dev,) if dev else ()
            with self._lock:
                self._sample, self._fresh = sample, True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=NPU_SMI_TIMEOUT_S + 1)
        if self._probe:
            self._probe.close()

    # -- what the training loop calls -------------------------------------------

    def step_begin(self) -> None:
        """Start of an iteration: the previous one (batch to next batch) is timed whole,
        so the log step's device sync counts and a validation pause does not."""
        now = time.perf_counter()
        if self._t_step and not self._paused:
            self._step_s += now - self._t_step
            self._wait_s += self._wait_pending
            self._steps += 1
        self._t_step, self._paused, self._wait_pending = now, False, 0.0

    def data_ready(self) -> None:
        self._wait_pending = time.perf_counter() - self._t_step

    def pause(self) -> None:
        """The current iteration included validation or a snapshot: leave it out."""
        self._paused = True

    def due(self) -> bool:
        """A new sample arrived since the last one was taken."""
        with self._lock:
            return self._fresh

    def take(self) -> RankStats:
        """This rank's numbers now; step timing restarts."""
        with self._lock:
            sample, self._fresh = dict(self._sample or {}), False
        steps, step_s, wait_s = self._steps, self._step_s, self._wait_s
        self._steps, self._step_s, self._wait_s = 0, 0.0, 0.0
        devices = sample.pop("devices", ())
        return RankStats(
            rank=self.rank,
            data_wait=wait_s / step_s if step_s > 0 else None,
            ms_per_step=step_s * 1000.0 / steps if steps else None,
            devices=devices,
            **sample,
        )


def gather_ranks(mon: SysMonitor, world_size: int, device) -> tuple[RankStats, ...] | None:
    """Every rank's :meth:`SysMonitor.take`, on rank 0 (None on the others).

    Called by all ranks at the same step (they agreed through the log step's all_reduce).
    """
    mine = mon.take()
    if world_size <= 1:
        return (mine,)
    import torch
    import torch.distributed as dist

    vec = torch.tensor(to_vector(mine), dtype=torch.float32, device=device)
    parts = [torch.empty_like(vec) for _ in range(world_size)]
    dist.all_gather(parts, vec)
    if mon.rank != 0:
        return None
    return tuple(from_vector(r, p.tolist(), mon.device_type) for r, p in enumerate(parts))
