"""The matrix engine before and after, side by side: training steps and inference as
`n2n-core run` and `infer` take them, each against the matmul rate measured beside it.

Each measurement runs in a child process of the version it measures, set up as that
version's CLI sets up a computing command (OpenMP waiting; in versions that have it,
freed memory kept), and the two versions alternate, round after round; the table
prints medians and new/old. Usage:

    .venv/bin/python benchmarks/bench_matrix.py --baseline-python OTHER/.venv/bin/python [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, statistics
from n2n_core.process import ompenv
ompenv.apply()
try:
    from n2n_core.process import memory
    memory.keep_freed_memory()
except ImportError:
    pass
import numpy as np, torch
from n2n_core.bench.measure import EngineTrainer, conv_flops, matmul_fn
from n2n_core.engine.device import resolve_precision
from n2n_core.engine.network import UNet
what, a, b, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dev = torch.device("cpu")
mm, mmf = matmul_fn(2048, dev, torch.bfloat16)
prec = sys.argv[5] if len(sys.argv) > 5 else resolve_precision(dev, "auto")
if what == "train":
    flops = 3.0 * conv_flops(UNet(3), (a, 3, b, b))
    eng = EngineTrainer(a, b, dev, prec)
    work = eng.step
    label = f"train batch {a}, {b}x{b}, {prec}"
else:
    from n2n_core.evaluation.infer import make_runner_for_snapshot
    from n2n_core.evaluation.protocol import infer_float
    runner, _ = make_runner_for_snapshot("builtin:photo", "cpu", "auto")
    img = (np.random.default_rng(0).random((3, a, b), dtype=np.float32) - 0.5)
    flops = conv_flops(UNet(3), (1, 3, a, b))
    work = lambda: infer_float(runner, img)
    label = f"infer {b}x{a}, engine auto"
for _ in range(2):
    work(); mm()
ws, ms, cs = [], [], []
for _ in range(n):
    t0, c0 = time.perf_counter(), time.process_time()
    work()
    ws.append(time.perf_counter() - t0); cs.append(time.process_time() - c0)
    t0 = time.perf_counter(); mm(); ms.append(time.perf_counter() - t0)
w, m, c = statistics.median(ws), statistics.median(ms), statistics.median(cs)
print(json.dumps({"label": label, "ms": w * 1000, "cpu_ms": c * 1000, "gflops": flops / w / 1e9,
                  "bf16_mm_gflops": mmf / m / 1e9, "fraction": (flops / w) / (mmf / m)}))
"""

CASES = [
    ("train", 4, 256, 5, None),  # the paper's step, default precision
    ("train", 2, 64, 30, None),  # the quickstart's step
    ("train", 4, 256, 3, "fp32"),  # fp32: must not get slower
    ("infer", 512, 768, 5, None),  # one Kodak-sized photo
]


def child(python: str, case) -> dict:
    what, a, b, n, prec = case
    args = [python, "-c", CHILD, what, str(a), str(b), str(n)] + ([prec] if prec else [])
    out = subprocess.run(args, capture_output=True, text=True, cwd="/", timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{python}: {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-python", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    new = str(Path(sys.executable))
    from n2n_core.runs.provenance import cpu_model

    print(f"CPU: {cpu_model()}; new {new}, old {a.baseline_python}; rounds {a.rounds}")
    print(
        "| work | old ms | new ms | new/old speed | old of bf16 matmul | new of bf16 matmul "
        "| old / new CPU ms (both threads) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case in CASES:
        res: dict[str, list[dict]] = {"old": [], "new": []}
        for r in range(a.rounds):
            order = [("old", a.baseline_python), ("new", new)]
            for name, py in order if r % 2 == 0 else order[::-1]:
                res[name].append(child(py, case))
        med = {
            k: {f: statistics.median(x[f] for x in v) for f in ("ms", "cpu_ms", "fraction")}
            for k, v in res.items()
        }
        print(
            f"| {res['new'][0]['label']} | {med['old']['ms']:.1f} | {med['new']['ms']:.1f} "
            f"| {med['old']['ms'] / med['new']['ms']:.2f}x | {100 * med['old']['fraction']:.0f}% "
            f"| {100 * med['new']['fraction']:.0f}% "
            f"| {med['old']['cpu_ms']:.0f} / {med['new']['cpu_ms']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
