"""onnxruntime vs PyTorch for single-image inference on the CPU, side by side.

Both engines run the same weights (a random-init U-Net: speed does not depend on
the values) on the same padded float32 input, with the same thread count, in one
process. Rounds alternate between the engines so that load from other processes
hits both alike; the median of each engine's rounds is reported with the ratio.
The result decides what ``n2n-core infer --engine auto`` picks (n2n_core/infer.py).

    .venv/bin/python benchmarks/bench_infer.py [--rounds 7] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from n2n_core.engine.network import UNet  # noqa: E402
from n2n_core.evaluation.onnx import _runner, _session, export_bytes  # noqa: E402
from n2n_core.evaluation.protocol import pad_image, torch_runner  # noqa: E402

SIZES = [(512, 768), (256, 256)]  # (H, W): the seed's frozen 768x512 input, a small crop


def _time(run, x: np.ndarray) -> float:
    t = time.perf_counter()
    run(x)
    return (time.perf_counter() - t) * 1000.0


def bench(rounds: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = UNet(3).eval()
    engines = {
        "torch (channels_last)": torch_runner(net, "cpu", channels_last=True),
        "torch (NCHW)": torch_runner(net, "cpu", channels_last=False),
    }
    session = _session(export_bytes(net, 3), "bench")
    session_threads = session.get_session_options().intra_op_num_threads
    engines["onnxruntime"] = _runner(session)[0]
    rows = []
    for h, w in SIZES:
        rng = np.random.default_rng(0)
        x = pad_image(rng.uniform(-0.5, 0.5, (3, h, w)).astype(np.float32))[None]
        ref = engines["torch (NCHW)"](x)
        for run in engines.values():  # warm-up; and all engines compute the same function
            diff = float(np.abs(run(x) - ref).max())
            assert diff < 1e-3, diff
        times: dict[str, list[float]] = {k: [] for k in engines}
        for _ in range(rounds):
            for name, run in engines.items():
                times[name].append(_time(run, x))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"size": f"{w}x{h}", "ms": med})
    return {
        "threads": threads,
        "ort_intra_op_threads": session_threads,
        "rounds": rounds,
        "rows": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = bench(a.rounds, a.threads)
    res["cpu_count"] = os.cpu_count()
    res["torch"] = torch.__version__
    import onnxruntime

    res["onnxruntime"] = onnxruntime.__version__
    if a.json:
        print(json.dumps(res))
        return 0
    print(
        f"CPU, {res['threads']} torch threads (ORT intra-op {res['ort_intra_op_threads']}: "
        f"0 = one per physical core), torch {res['torch']}, onnxruntime {res['onnxruntime']}, "
        f"median of {res['rounds']} alternating rounds"
    )
    for row in res["rows"]:
        ms = row["ms"]
        ort_ms, pt_ms = ms["onnxruntime"], ms["torch (channels_last)"]
        parts = "  ".join(f"{k} {v:8.1f} ms" for k, v in ms.items())
        print(
            f"{row['size']:>8}:  {parts}   torch(channels_last)/onnxruntime = {pt_ms / ort_ms:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
