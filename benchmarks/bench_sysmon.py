"""What the ``sys`` records cost a training step, measured part by part on this machine.

    .venv/bin/python benchmarks/bench_sysmon.py [--crop 64] [--interval 5]

The training thread pays two clock reads per step (data wait, step time). Every
``runtime.sys_every`` seconds the sampler thread reads psutil (and NVML or
npu-smi where present) and, at the next log step, ranks all_gather one
12-float vector. The worst case for a CPU run is that the sampler's whole work
comes out of training time, so the cost charged here is::

    per-step clock reads / step time + (sample + gather) / interval

with the step time of the real engine step (batch 4) measured here too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from n2n_core.bench.measure import EngineTrainer
from n2n_core.engine.sysmon import VECTOR_LEN, SysMonitor, host_stats


def per_call(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _gather_worker(rank: int, world: int, init: str, n: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    vec = torch.zeros(VECTOR_LEN)
    parts = [torch.empty_like(vec) for _ in range(world)]
    for _ in range(10):
        dist.all_gather(parts, vec)
    t0 = time.perf_counter()
    for _ in range(n):
        dist.all_gather(parts, vec)
    if rank == 0:
        with open(out, "w") as f:
            f.write(str((time.perf_counter() - t0) / n))
    dist.destroy_process_group()


def gather_seconds(n: int = 200) -> float:
    with tempfile.TemporaryDirectory() as d:
        init, out = os.path.join(d, "init"), os.path.join(d, "out")
        mp.spawn(_gather_worker, args=(2, init, n, out), nprocs=2, join=True)
        with open(out) as f:
            return float(f.read())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--interval", type=float, default=5.0, help="runtime.sys_every (seconds)")
    a = p.parse_args(argv)

    eng = EngineTrainer(4, a.crop, torch.device("cpu"))
    eng.step()
    steps = [per_call(eng.step, 1) for _ in range(3)]
    step_s = statistics.median(steps)

    mon = SysMonitor(0, "cpu", None, interval=0)

    def clocks() -> None:
        mon.step_begin()
        mon.data_ready()

    clock_s = statistics.median(per_call(clocks, 100_000) for _ in range(3))
    host_stats()
    sample_s = statistics.median(per_call(host_stats, 200) for _ in range(3))
    take_s = per_call(mon.take, 10_000)
    spawn_s = per_call(lambda: subprocess.run(["true"], check=False), 20)
    gather_s = gather_seconds()

    per_step = clock_s / step_s
    per_interval = (sample_s + take_s + gather_s) / a.interval
    print(f"engine step (batch 4, crop {a.crop}, cpu): {step_s * 1000:.1f} ms")
    print(f"clock reads per step: {clock_s * 1e6:.2f} us")
    print(f"psutil sample: {sample_s * 1000:.3f} ms; take(): {take_s * 1e6:.1f} us")
    print(f"all_gather of {VECTOR_LEN} floats, 2 ranks, gloo: {gather_s * 1000:.3f} ms")
    print(f"(npu-smi runs as a subprocess; spawning `true` here: {spawn_s * 1000:.1f} ms)")
    print(
        f"cost: {per_step:.2e} of a step (clocks) + {per_interval:.2e} of wall time "
        f"(sampling every {a.interval:g} s) = {per_step + per_interval:.2e} "
        f"({(per_step + per_interval) * 100:.4f}% of a step)"
    )
    return 0 if per_step + per_interval < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
