"""``n2n-core bench``: how fast the engine is, against a plain port and the machine's limit.

Everything is measured in one process, side by side and interleaved (A, B, A,
B, ... with the order rotated each round), and reported as medians, so ratios
stay meaningful on a busy machine. Three baselines frame each number:

- the plain port: ``plain_unet.py`` (in this package), a straightforward eager
  fp32 NCHW PyTorch version of the same network, data pipeline and step (what a
  user would write);
- the machine's measured fp32 matrix-multiply rate: the work of a step (its
  convolution FLOPs, counted from the layer shapes) at that rate is the limit,
  and each row shows the fraction of it reached;
- onnxruntime (when installed) for inference.

Sections: training steps (the paper's batch 4 at 256x256, and the quickstart
settings), inference of one 768x512 image, the data pipeline alone on one
thread, a profile of one engine step, and memory (peak RSS, RSS growth over a
long run). Without ``--json`` the output is Markdown, ready for
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Sizes:
    train: tuple[tuple[str, int, int], ...]  # (setting, batch, crop)
    infer_hw: tuple[int, int]
    data_crop: int
    matmul_n: int
    reps: int
    data_seconds: float
    memory_steps: int
    memory_crop: int
    compile: bool


FULL = Sizes(
    train=(("paper", 4, 256), ("quickstart", 2, 64)),
    infer_hw=(512, 768),
    data_crop=256,
    matmul_n=2048,
    reps=3,
    data_seconds=2.0,
    memory_steps=2000,
    memory_crop=32,
    compile=True,  # on CPU only with N2N_BENCH_COMPILE=1 (minutes of compiling, see RESULTS.md)
)
QUICK = Sizes(
    train=(("paper", 1, 32), ("quickstart", 1, 32)),
    infer_hw=(32, 64),
    data_crop=32,
    matmul_n=64,
    reps=1,
    data_seconds=0.05,
    memory_steps=4,
    memory_crop=32,
    compile=False,
)


# -- measuring ----------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "npu":  # pragma: no cover - needs Ascend hardware
        torch.npu.synchronize()
    elif device.type == "mps":  # pragma: no cover - needs Apple hardware
        torch.mps.synchronize()


def interleaved(
    fns: dict[str, Callable[[], object]], reps: int, device: torch.device, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each function, timed in rotated round-robin order."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    _sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for k in range(len(names)):
            n = names[(r + k) % len(names)]
            t0 = time.perf_counter()
            fns[n]()
            _sync(device)
            times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def matmul_fn(n: int, device: torch.device, dtype=torch.float32) -> tuple[Callable, float]:
    """(a call doing one n x n x n matrix multiply, its FLOPs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return (lambda: torch.mm(a, b, out=out)), 2.0 * n**3


def conv_flops(net: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """Forward FLOPs of every convolution for an input of ``shape`` (2 per multiply-add)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        total += 2 * out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in net.modules() if hasattr(m, "kernel_size")]
    try:
        with torch.no_grad():
            net(torch.zeros(shape, device=next(net.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return float(total)


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


@contextlib.contextmanager
def num_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# -- the engine's pieces, exactly as a run assembles them ---------------------------


def _preset(batch: int, crop: int, device: torch.device, precision: str = "fp32"):
    from n2n_core.config.schema import Preset

    return Preset.model_validate(
        {
            "name": "bench",
            "noise": {"type": "gaussian", "train_sigma": [0, 50], "val_sigma": 25},
            "data": {"train": "builtin:photos", "val": None},
            "train": {"steps": 100_000, "batch": batch, "crop": crop, "lr": 0.001},
            "runtime": {"device": device.type, "precision": precision},
        }
    )


class EngineTrainer:
    """Training steps exactly as a run takes them: :func:`n2n_core.training.step.train_step` on its parts."""

    def __init__(
        self, batch, crop, device, precision="fp32", compiled=False, seed=0, kept_bf16=None
    ):
        from n2n_core.engine.device import AUTOCAST_DTYPES, apply_math_mode
        from n2n_core.engine.network import UNet
        from n2n_core.tasks.image import ImageTask
        from n2n_core.training.step import (
            StepParts,
            bf16_parts,
            keep_bf16_weights,
            make_optimizer,
        )

        preset = _preset(batch, crop, device, precision)
        apply_math_mode(device, preset.runtime.math)
        torch.manual_seed(seed)
        self.task = ImageTask(preset, device, load_val=False)
        self.net = UNet(3).to(device)
        if preset.runtime.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # As a run decides (kept_bf16=None); True/False to compare the two bf16 paths.
        keep = keep_bf16_weights(device, precision, 1, compiled) if kept_bf16 is None else kept_bf16
        opt = make_optimizer(self.net, preset.train.lr, device, keep)
        self.model = self.net
        self.compile_error: str | None = None
        self.compile_s: float | None = None
        if compiled:
            from n2n_core.engine.compile import compile_model

            self.model = compile_model(self.net, device)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.parts = StepParts(
            self.task, self.model, opt, scaler, AUTOCAST_DTYPES[precision], device
        )
        if keep:
            self.parts = bf16_parts(self.net, self.parts)
        self.device = device
        self.step_no = 0
        self.loss_sum = torch.zeros((), device=device)
        if compiled:  # pay the compile outside the timings, and learn whether it worked
            t0 = time.perf_counter()
            self.step()
            _sync(device)
            self.compile_s = time.perf_counter() - t0
            self.compile_error = getattr(self.model, "failed", None)

    def step(self) -> None:
        from n2n_core.training.step import train_step

        self.loss_sum += train_step(self.parts, self.step_no)
        self.step_no += 1


def _bf16_ok(device: torch.device) -> bool:
    from n2n_core.engine.device import check_precision
    from n2n_core.errors import UserError

    try:
        check_precision(device, "bf16")
    except UserError:
        return False
    return True


# -- sections -----------------------------------------------------------------------


def bench_matmul(s: Sizes, device: torch.device) -> dict:
    fns, flops = {}, {}
    fns["fp32"], flops["fp32"] = matmul_fn(s.matmul_n, device)
    if _bf16_ok(device):
        fns["bf16"], flops["bf16"] = matmul_fn(s.matmul_n, device, torch.bfloat16)
    t = interleaved(fns, max(s.reps, 3), device)
    return {"n": s.matmul_n, **{f"{k}_gflops": round(flops[k] / t[k] / 1e9, 2) for k in t}}


def _rate_fns(s: Sizes, device: torch.device) -> tuple[dict[str, Callable], dict[str, float]]:
    """The matrix-multiply calls a section times beside its own work: fp32, and bf16 where
    the device computes it (each row is a fraction of its own precision's rate)."""
    fns, flops = {}, {}
    fns["matmul fp32"], flops["fp32"] = matmul_fn(s.matmul_n, device)
    if _bf16_ok(device):
        fns["matmul bf16"], flops["bf16"] = matmul_fn(s.matmul_n, device, torch.bfloat16)
    return fns, flops


def _rates(t: dict[str, float], flops: dict[str, float]) -> dict[str, float]:
    """GFLOP/s of each matmul measured in ``t`` (and removed from it)."""
    return {k: flops[k] / t.pop(f"matmul {k}") / 1e9 for k in list(flops)}


def _data_ms(batch: int, crop: int, device: torch.device) -> float:
    """Milliseconds a step's batch takes to make (crops and noise), on this thread."""
    from n2n_core.tasks.image import ImageTask

    task = ImageTask(_preset(batch, crop, device), device, load_val=False)
    task.make_batch(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.2 or n < 3:
        task.make_batch(n)
        n += 1
    return (time.perf_counter() - t0) * 1000 / n


def bench_train(s: Sizes, device: torch.device, plain) -> list[dict]:
    from n2n_core.engine.device import resolve_precision
    from n2n_core.engine.network import UNet

    default = resolve_precision(device, "auto")
    rows = []
    for setting, batch, crop in s.train:
        flops = 3.0 * conv_flops(UNet(3).to(device), (batch, 3, crop, crop))
        fns, mm_flops = _rate_fns(s, device)
        extra: dict[str, dict] = {}
        eng = EngineTrainer(batch, crop, device)
        fns["engine fp32"] = eng.step
        if "bf16" in mm_flops:
            # What a bf16 run takes (kept bf16 weights on a CPU), and autocast beside it.
            fns["engine bf16"] = EngineTrainer(batch, crop, device, "bf16").step
            fns["engine bf16 autocast"] = EngineTrainer(
                batch, crop, device, "bf16", kept_bf16=False
            ).step
        if s.compile and (device.type != "cpu" or os.environ.get("N2N_BENCH_COMPILE") == "1"):
            comp = EngineTrainer(batch, crop, device, default, compiled=True)
            name = f"engine {default} compiled"
            extra[name] = {
                "compile_s": round(comp.compile_s or 0.0, 1),
                "compile_error": comp.compile_error,
            }
            if comp.compile_error is None:
                fns[name] = comp.step
        pt = plain.PlainTrainer(eng.task.sampler.images, batch, crop, device=device)
        fns["plain"] = pt.step
        t = interleaved(fns, s.reps, device)
        rates = _rates(t, mm_flops)
        plain_s = t.get("plain")
        data_ms = _data_ms(batch, crop, device)
        for impl, sec in t.items():
            prec = "bf16" if "bf16" in impl else "fp32"
            rows.append(
                {
                    "setting": setting,
                    "batch": batch,
                    "crop": crop,
                    "impl": impl,
                    "precision": prec,
                    "default": impl == f"engine {default}",
                    "ms": round(sec * 1000, 2),
                    "speedup": round(plain_s / sec, 3) if plain_s else None,
                    "gflop": round(flops / 1e9, 2),
                    "gflops": round(flops / sec / 1e9, 2),
                    "matmul_gflops": round(rates[prec], 1),
                    "matmul_fraction": round(flops / sec / 1e9 / rates[prec], 3),
                    # Making the batch runs before the step on the same thread: its share
                    # of the step is what the step waits for it.
                    "data_ms": round(data_ms, 2),
                    "data_share": round(data_ms / (sec * 1000), 4),
                    **extra.get(impl, {}),
                }
            )
        for impl, info in extra.items():
            if impl not in t:
                rows.append(
                    {"setting": setting, "batch": batch, "crop": crop, "impl": impl, **info}
                )
    return rows


@contextlib.contextmanager
def warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def bench_infer(s: Sizes, device: torch.device, plain, record: bool = False) -> dict:
    """One image through every engine ``infer`` has here, beside the matmul rates; on the
    CPU, with ``record``, the fastest becomes this machine's ``--engine auto``."""
    from n2n_core.engine.network import UNet
    from n2n_core.evaluation.engines import CPU_ENGINES, engine_runner, installed, record_choice
    from n2n_core.evaluation.protocol import infer_float, torch_runner

    h, w = s.infer_hw
    torch.manual_seed(0)
    net = UNet(3).to(device).eval()
    flops = conv_flops(net, (1, 3, h, w))
    img = (np.random.default_rng(0).random((3, h, w), dtype=np.float32) - 0.5).astype(np.float32)
    fns, mm_flops = _rate_fns(s, device)
    engines = [e for e in CPU_ENGINES if installed(e)] if device.type == "cpu" else ["torch"]
    notes = {}
    for engine in engines:
        try:
            with warnings_off():
                run = engine_runner(net, 3, device, engine)
        except Exception as e:  # an engine that cannot export or compile here is reported
            notes[engine] = f"{e.__class__.__name__}: {str(e).splitlines()[0][:120]}"
            continue
        fns[engine] = lambda run=run: infer_float(run, img)
    if "bf16" in mm_flops:  # the bf16 path before the fused one, for the before/after
        cl = UNet(3).to(device).eval().to(memory_format=torch.channels_last)
        cl.load_state_dict(net.state_dict())
        run16 = torch_runner(cl, device, channels_last=True, autocast_dtype=torch.bfloat16)
        fns["torch autocast bf16"] = lambda: infer_float(run16, img)
    pnet = plain.PlainUNet(3).to(device)
    pnet.load_state_dict(net.state_dict())
    fns["plain"] = lambda: plain.plain_infer(pnet, img)
    t = interleaved(fns, s.reps, device)
    rates = _rates(t, mm_flops)
    plain_s = t.get("plain")
    rows = []
    for impl, sec in t.items():
        prec = "bf16" if (impl in ("torch-bf16", "torch autocast bf16")) else "fp32"
        if impl == "openvino" and "bf16" in rates:
            prec = "bf16"  # OpenVINO computes in bf16 where the CPU does (engines.py)
        rows.append(
            {
                "impl": impl,
                "precision": prec,
                "ms": round(sec * 1000, 2),
                "speedup": round(plain_s / sec, 3) if plain_s else None,
                "gflops": round(flops / sec / 1e9, 2),
                "matmul_gflops": round(rates[prec], 1),
                "matmul_fraction": round(flops / sec / 1e9 / rates[prec], 3),
            }
        )
    measured = {e: round(t[e] * 1000, 2) for e in engines if e in t}
    recorded = False
    if record and device.type == "cpu" and measured:
        try:
            default, recorded = record_choice(measured), True
        except OSError:  # a read-only home: the choice holds for this report only
            default = min(measured, key=measured.get)
    else:
        from n2n_core.evaluation.engines import auto_engine

        default = auto_engine(device.type)
    return {
        # What `n2n-core infer` runs by default (engine=auto) on this machine from now on.
        "infer_default": default,
        "recorded": recorded,
        "engines_ms": measured,
        "height": h,
        "width": w,
        "gflop": round(flops / 1e9, 2),
        "rows": rows,
        "notes": notes,
    }


def bench_data(s: Sizes, plain) -> dict:
    """Crops (+ noise) per second on one CPU thread: the engine's pipeline against the plain one."""
    from n2n_core.tasks.image import ImageTask

    cpu = torch.device("cpu")
    batch, crop = 4, s.data_crop
    task = ImageTask(_preset(batch, crop, cpu), cpu, load_val=False)
    buf = np.empty((batch, crop, crop, 3), np.uint8)
    rng = np.random.default_rng(0)
    counter = iter(range(10**9))
    fns: dict[str, Callable] = {
        "engine crops+noise": lambda: task.make_batch(next(counter)),
        "engine crops (uint8)": lambda: task.sampler.sample(batch, rng, buf),
    }
    prng = np.random.default_rng(0)
    images = task.sampler.images
    fns["plain crops+noise"] = lambda: plain.random_batch(images, batch, crop, prng)
    with num_threads(1):
        # Enough calls per round that each timing is ~data_seconds / len(fns).
        per = {}
        for name, fn in fns.items():
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < 0.05 or n < 2:
                fn()
                n += 1
            per[name] = max(1, int(n * s.data_seconds / len(fns) / 0.05 / 5))

        def repeat(fn, n):
            return lambda: [fn() for _ in range(n)]

        t = interleaved({k: repeat(f, per[k]) for k, f in fns.items()}, 5, cpu)
    rates = {k: batch * per[k] / sec for k, sec in t.items()}
    plain_rate = rates.get("plain crops+noise")
    # What bounds it: a Noise2Noise pair draws two Gaussian samples per value of a crop, and
    # that draw alone (torch's normal_, the step's generator) allows at most this many.
    buf32 = torch.empty(batch * crop * crop * 3)
    gen = torch.Generator().manual_seed(0)
    with num_threads(1):
        normal = interleaved({"normal": lambda: buf32.normal_(generator=gen)}, 5, cpu)["normal"]
    normals_per_s = buf32.numel() / normal
    return {
        "crop": crop,
        "threads": 1,
        "normal_per_s": round(normals_per_s),
        "noise_bound_crops_per_s": round(normals_per_s / (2 * crop * crop * 3), 1),
        "rows": [
            {
                "impl": k,
                "crops_per_s": round(r, 1),
                "speedup": round(r / plain_rate, 3) if plain_rate and "noise" in k else None,
            }
            for k, r in rates.items()
        ],
    }


def bench_profile(s: Sizes, device: torch.device, top: int = 12) -> dict:
    """torch.profiler's top ops (self time) over a few engine steps at the quickstart settings."""
    from torch.profiler import ProfilerActivity, profile

    _, batch, crop = s.train[-1]
    eng = EngineTrainer(batch, crop, device)
    eng.step()
    acts = [ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(ProfilerActivity.CUDA)
    steps = 3
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(steps):
            eng.step()
        _sync(device)
    wall = time.perf_counter() - t0
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return {
        "setting": f"batch {batch}, crop {crop}, {steps} steps",
        "wall_ms_per_step": round(wall * 1000 / steps, 2),
        "top": [
            {
                "name": e.key,
                "self_ms_per_step": round(e.self_cpu_time_total / 1000 / steps, 3),
                "percent": round(100 * e.self_cpu_time_total / total, 1),
                "calls_per_step": round(e.count / steps, 1),
            }
            for e in events[:top]
        ],
    }


def bench_memory(s: Sizes, device: torch.device) -> dict:
    """RSS while training ``memory_steps`` steps at a small crop: after 10% vs at the end."""
    eng = EngineTrainer(4, s.memory_crop, device)
    marks = {}
    mark_at = {max(1, s.memory_steps // 10): "rss_at_10pct_mb", s.memory_steps: "rss_at_end_mb"}
    t0 = time.perf_counter()
    for i in range(1, s.memory_steps + 1):
        eng.step()
        if i in mark_at:
            _sync(device)
            marks[mark_at[i]] = round(rss_mb(), 1)
    return {
        "steps": s.memory_steps,
        "crop": s.memory_crop,
        "ms_per_step": round((time.perf_counter() - t0) * 1000 / s.memory_steps, 2),
        **marks,
        "growth_mb": round(marks["rss_at_end_mb"] - marks["rss_at_10pct_mb"], 1),
    }


def machine_info(device: torch.device) -> dict:
    from n2n_core.runs.provenance import cpu_flags, cpu_model

    cpu = cpu_model()
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_bf16": sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx")),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "omp_env": {
            k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
        },
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    with contextlib.suppress(ImportError):
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    return info


def goals(report: dict) -> list[dict]:
    """The issue's goals, checked against this run's numbers (None where not measurable)."""
    out = []
    dev = report["machine"]["device"].split(":")[0]

    def row(rows, **match):
        for r in rows:
            if all(r.get(k) == v for k, v in match.items()):
                return r
        return None

    fp32 = row(report["train"], setting="paper", impl="engine fp32")
    eng = row(report["train"], setting="paper", default=True) or fp32
    inf = row(report["infer"]["rows"], impl=report["infer"]["infer_default"])
    crops = row(report["data"]["rows"], impl="engine crops+noise")
    bf16 = "bf16_gflops" in report["matmul"]
    if dev == "cpu":
        # On a CPU with native bf16, the matrix engine's rate is the limit: the tiles are what
        # bf16 steps run on (docs/ARCHITECTURE.md, "The matrix engine"); elsewhere fp32's.
        out += [
            _goal("CPU train step >= 1.5x plain port", fp32 and fp32["speedup"], 1.5),
            _goal(
                f"CPU train step, default precision ({eng and eng['impl']}) >= "
                f"{'60% of bf16' if bf16 else '70% of fp32'} matmul rate",
                eng and eng["matmul_fraction"],
                0.6 if bf16 else 0.7,
            ),
            _goal(
                f"CPU inference, default engine ({inf and inf['impl']}) >= "
                f"{'50% of bf16' if bf16 else '1.5x plain port'}",
                inf and (inf["matmul_fraction"] if bf16 else inf["speedup"]),
                0.5 if bf16 else 1.5,
            ),
        ]
    elif dev == "cuda":
        out += [
            _goal("GPU train step <= 3 ms (batch 4, 256x256)", eng and eng["ms"], 3.0, "<="),
            _goal("GPU 768x512 inference <= 2 ms", inf and inf["ms"], 2.0, "<="),
        ]
    bound = report["data"].get("noise_bound_crops_per_s")
    out.append(
        _goal(
            "data: >= 2000 crops/s with noise, 1 thread"
            + (f" (the Gaussian draw alone allows {bound:.0f})" if bound else ""),
            crops and crops["crops_per_s"],
            2000,
        )
    )
    return out


def _goal(name: str, value, target: float, op: str = ">=") -> dict:
    met = None if value is None else (value >= target if op == ">=" else value <= target)
    return {"goal": name, "value": value, "target": target, "met": met}


def run_bench(s: Sizes, device: torch.device | None = None, progress=None) -> dict:
    """Every section, side by side with the matmul rates; the report ``--json`` prints."""
    from n2n_core.engine.device import resolve_device

    device = device or resolve_device("auto")
    say = progress or (lambda msg: None)
    from n2n_core.bench import plain_unet as plain

    report: dict = {"quick": s is QUICK, "machine": machine_info(device)}
    report["plain_port"] = plain.__file__
    say("matmul rate")
    report["matmul"] = bench_matmul(s, device)
    say("training steps")
    report["train"] = bench_train(s, device, plain)
    say("inference")
    # A quick bench (tiny sizes) says nothing about speed: it records no choice.
    report["infer"] = bench_infer(s, device, plain, record=s is not QUICK)
    say("data pipeline")
    report["data"] = bench_data(s, plain)
    say("profile")
    report["profile"] = bench_profile(s, device)
    say(f"memory ({s.memory_steps} steps)")
    report["memory"] = bench_memory(s, device)
    report["memory"]["peak_rss_mb"] = round(peak_rss_mb(), 1)
    report["goals"] = goals(report)
    return report


# -- output -------------------------------------------------------------------------


def _f(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _rate(row: dict) -> str:
    return f"{100 * row['matmul_fraction']:.0f}% of {row['precision']} {row['matmul_gflops']:.0f}"


def to_markdown(r: dict) -> str:
    m = r["machine"]
    mm = r["matmul"]
    lines = [
        f"## Machine ({m['date']})",
        "",
        f"- {m['cpu']} ({m['cpu_count']} CPUs, torch threads {m['torch_threads']}), "
        f"device `{m['device']}`{', ' + m['gpu'] if m.get('gpu') else ''}",
        f"- {m['platform']}; Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}"
        + (f", onnxruntime {m['onnxruntime']}" if m.get("onnxruntime") else ""),
        f"- load average at start: {m['load_avg']}; OpenMP env: {m['omp_env']}",
        f"- matmul rate ({mm['n']}x{mm['n']}): fp32 {mm['fp32_gflops']} GFLOP/s"
        + (f", bf16 {mm['bf16_gflops']} GFLOP/s" if "bf16_gflops" in mm else ""),
        f"- plain port: `{r['plain_port']}`",
        f"- `n2n-core infer --engine auto` on this device: {r['infer']['infer_default']}"
        + (" (measured fastest here, recorded for `infer`)" if r["infer"].get("recorded") else ""),
        "",
        "## Training step",
        "",
        "Each row is a fraction of the matmul rate of its own precision, measured beside it; "
        "data: making the batch (crops + noise), which the step waits for.",
        "",
        "| setting | impl | ms/step | speed-up vs plain | GFLOP/s | of the matmul rate | data |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in r["train"]:
        name = f"{row['setting']} (batch {row['batch']}, {row['crop']}x{row['crop']})"
        if "ms" not in row:
            lines.append(
                f"| {name} | {row['impl']} | not run: {row.get('compile_error')} | | | | |"
            )
            continue
        note = f" (compile {row['compile_s']} s)" if row.get("compile_s") else ""
        note += " (default)" if row.get("default") else ""
        lines.append(
            f"| {name} | {row['impl']}{note} | {row['ms']:.1f} | {_f(row['speedup'])}x "
            f"| {row['gflops']:.1f} | {_rate(row)} | {100 * row['data_share']:.1f}% |"
        )
    inf = r["infer"]
    lines += [
        "",
        f"## Inference ({inf['width']}x{inf['height']}, {inf['gflop']} GFLOP)",
        "",
        "| engine | ms | speed-up vs plain | GFLOP/s | of the matmul rate |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in inf["rows"]:
        note = " (auto)" if row["impl"] == inf["infer_default"] else ""
        lines.append(
            f"| {row['impl']}{note} | {row['ms']:.1f} | {_f(row['speedup'])}x "
            f"| {row['gflops']:.1f} | {_rate(row)} |"
        )
    for engine, why in (inf.get("notes") or {}).items():
        lines.append(f"\n{engine}: not measured ({why})")
    d = r["data"]
    lines += [
        "",
        f"## Data pipeline ({d['crop']}x{d['crop']} crops, {d['threads']} thread)",
        "",
        "| impl | crops/s | speed-up vs plain |",
        "|---|---:|---:|",
    ]
    for row in d["rows"]:
        lines.append(f"| {row['impl']} | {row['crops_per_s']:.0f} | {_f(row['speedup'])} |")
    lines.append(
        f"\nThe Gaussian draw alone: {d['normal_per_s'] / 1e6:.0f} M samples/s on one thread, "
        f"at most {d['noise_bound_crops_per_s']:.0f} noisy pairs/s at this crop."
    )
    p = r["profile"]
    lines += [
        "",
        f"## Profile: engine step ({p['setting']}, {p['wall_ms_per_step']} ms/step wall)",
        "",
        "| op | self ms/step | % | calls/step |",
        "|---|---:|---:|---:|",
    ]
    for e in p["top"]:
        lines.append(
            f"| `{e['name']}` | {e['self_ms_per_step']:.2f} | {e['percent']:.1f} | {e['calls_per_step']:g} |"
        )
    mem = r["memory"]
    lines += [
        "",
        "## Memory",
        "",
        f"- peak RSS of this bench process: {mem['peak_rss_mb']} MiB",
        f"- {mem['steps']} training steps at crop {mem['crop']} ({mem['ms_per_step']} ms/step): "
        f"RSS {mem['rss_at_10pct_mb']} MiB after 10%, {mem['rss_at_end_mb']} MiB at the end "
        f"(growth {mem['growth_mb']} MiB)",
        "",
        "## Goals",
        "",
        "| goal | measured | met |",
        "|---|---:|---|",
    ]
    for g in r["goals"]:
        met = {True: "yes", False: "no", None: "not measured"}[g["met"]]
        lines.append(f"| {g['goal']} | {_f(g['value'], '{:g}')} | {met} |")
    return "\n".join(lines)


def main(as_json: bool = False, quick: bool = False) -> int:
    s = QUICK if quick else FULL

    def say(msg: str) -> None:
        print(f"bench: {msg} ...", file=sys.stderr, flush=True)

    report = run_bench(s, progress=say)
    if as_json:
        print(json.dumps(report))
    else:
        print(to_markdown(report))
    return 0
