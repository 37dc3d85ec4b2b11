"""PSNR of each inference engine against fp32, on whole photos (Kodak24, CBSD68).

The question `infer --engine auto` must answer before it runs a bf16 engine by
default: does bf16 cost PSNR? Each engine denoises the same noisy images (the
validation protocol's noise, seed 0, sigma 25) with a built-in model; the table
prints each engine's mean PSNR and its difference from fp32 (`onnx`), side by side
in one run. Usage:

    .venv/bin/python benchmarks/infer_precision.py [--data DIR ...] [--models photo,quickstart]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from n2n_core.data.sources import open_val
from n2n_core.engine.noise import validation_noise
from n2n_core.engine.snapshots import load_network
from n2n_core.evaluation.engines import CPU_ENGINES, engine_runner, installed
from n2n_core.evaluation.protocol import validate
from n2n_core.pretrained import PREFIX, resolve_snapshot
from n2n_core.runs.provenance import cpu_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="*", default=[str(SHARED / "kodak"), str(SHARED / "cbsd68")])
    ap.add_argument("--models", default="photo,quickstart")
    ap.add_argument("--engines", default=",".join(CPU_ENGINES), help="fp32's onnx always runs")
    a = ap.parse_args()
    cpu = torch.device("cpu")
    engines = [e for e in a.engines.split(",") if e in CPU_ENGINES and installed(e)]
    print(f"CPU: {cpu_model()}, torch threads {torch.get_num_threads()}; engines: {engines}")
    print("| model | data | engine | PSNR | minus fp32 (onnx) | s per image |")
    print("|---|---|---|---:|---:|---:|")
    for model in a.models.split(","):
        snap_path = str(resolve_snapshot(PREFIX + model))
        net, snap = load_network(snap_path, cpu)
        for data in a.data:
            if not Path(data).is_dir():
                print(f"| {model} | {data} | (missing) | | | |")
                continue
            images = open_val(data, snap.in_channels)
            noise = validation_noise(None, snap.meta, snap_path)
            ref = None
            for engine in ["onnx", *[e for e in engines if e != "onnx"]]:
                run = engine_runner(net, snap.in_channels, cpu, engine)
                t0 = time.perf_counter()
                res = validate(run, images, noise, seed=0)
                per = (time.perf_counter() - t0) / len(images)
                ref = res.psnr if ref is None else ref
                print(
                    f"| {model} | {Path(data).name} ({len(images)}) | {engine} | {res.psnr:.3f} "
                    f"| {res.psnr - ref:+.3f} | {per:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
