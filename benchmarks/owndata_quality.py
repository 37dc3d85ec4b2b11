"""Quality of the own-data modes at a fixed CPU time budget, next to synthetic Noise2Noise.

From one set of clean colour photos (Kodak24 in ../shared/datasets/kodak when
present, else the photos bundled with scikit-image) it makes, with independent
Gaussian noise of sigma 25 saved as uint8 PNG:

- noisy:    one noisy copy per photo — Neighbor2Neighbor (presets/own-noisy.yaml);
- pairs:    two noisy copies per photo — Noise2Noise on pairs (presets/own-pairs.yaml);
- synthetic: the clean photos, noise drawn afresh each step (presets/quickstart.yaml).

Each mode trains for the same wall-clock budget: a short in-process calibration
measures its time per step, which sets ``train.steps``. The own modes are then
scored on the very noisy copies they trained on, against the clean photos (no
clean image was ever seen in training); synthetic N2N by the validation protocol
(fresh noise, seed 0) on the same photos. Run one at a time: it uses the CPU fully.

    .venv/bin/python benchmarks/owndata_quality.py --minutes 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from n2n_core.data.builtin import builtin_files  # noqa: E402
from n2n_core.data.demo import make_demo_noisy, make_demo_pairs  # noqa: E402
from n2n_core.data.images import list_images, load_image, save_image  # noqa: E402
from n2n_core.runs.records import EventRecord, TrainRecord, ValRecord, read_metrics  # noqa: E402

KODAK = ROOT.parent / "shared" / "datasets" / "kodak"
PRESETS = {
    "noisy": ROOT / "presets" / "own-noisy.yaml",
    "pairs": ROOT / "presets" / "own-pairs.yaml",
    "synthetic": ROOT / "presets" / "quickstart.yaml",
}


def make_data(photos: list[Path], work: Path, sigma: float) -> dict[str, list[str]]:
    """Data folders for the three modes; returns each mode's --set overrides for data."""
    clean = work / "clean"
    clean.mkdir(parents=True, exist_ok=True)
    for p in photos:  # PNG copies: one clean folder both synthetic training and scoring read
        save_image(clean / f"{p.stem}.png", load_image(p))
    make_demo_noisy(clean, work / "noisy", sigma, seed=1, refs=work / "noisy-refs")
    make_demo_pairs(clean, work / "pairs", sigma, seed=2, refs=work / "pairs-refs")
    return {
        "noisy": [f"data.train=noisy:{work / 'noisy'}", f"data.val=clean:{work / 'noisy-refs'}"],
        "pairs": [f"data.train=pairs:{work / 'pairs'}", f"data.val=clean:{work / 'pairs-refs'}"],
        "synthetic": [
            f"data.train={clean}",
            f"data.val={clean}",
            f"noise.train_sigma=[{sigma:g},{sigma:g}]",
            f"noise.val_sigma={sigma:g}",
        ],
    }


def common_overrides(threads: int) -> list[str]:
    return [
        "runtime.device=cpu",
        f"runtime.threads={threads}",
        "train.val_every=0",
        "train.snapshot_every=0",
        "train.log_every=50",
        "data.samples=3",
    ]


def seconds_per_step(preset_path: Path, overrides: list[str], steps: int = 12) -> float:
    """Median wall time of a training step of this preset, measured in-process."""
    import statistics

    import torch

    from n2n_core.config.preset import load_preset
    from n2n_core.engine.network import UNet
    from n2n_core.tasks.registry import make_task

    preset = load_preset(preset_path, overrides + ["train.steps=1000"])
    if preset.runtime.threads:
        torch.set_num_threads(preset.runtime.threads)
    task = make_task(preset, torch.device("cpu"), load_val=False)
    net = UNet(task.channels).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    times = []
    for step in range(steps):
        t0 = time.perf_counter()
        inp, target = task.make_batch(step)
        loss = task.loss(task.forward(net, inp), target, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def run_mode(preset: Path, overrides: list[str], results: Path, name: str) -> dict:
    cmd = [sys.executable, "-m", "n2n_core.cli", "run", str(preset), "--results-dir", str(results)]
    cmd += ["--name", name]
    for o in overrides:
        cmd += ["--set", o]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: run failed\n{proc.stdout}\n{proc.stderr}")
    run_dir = max(results.glob(f"*-{name}"))
    records = read_metrics(run_dir / "metrics.jsonl")
    train = [r for r in records if isinstance(r, TrainRecord)]
    val = [r for r in records if isinstance(r, ValRecord)][-1]
    start = next(r.time for r in records if isinstance(r, EventRecord))
    return {
        "run": str(run_dir),
        "steps": train[-1].step,
        "train_s": round(train[-1].time - start, 1),
        "total_wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "psnr": round(val.psnr, 2),
        "input_psnr": round(val.input_psnr, 2),
        "gain": round(val.psnr - val.input_psnr, 2),
        "images": val.images,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", help="folder of clean photos (default: Kodak24, else skimage)")
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per mode")
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--modes", default="noisy,pairs,synthetic")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: best on a shared CPU)"
    )
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--work", help="where data and runs go (default: a temporary folder)")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()

    if a.photos:
        photos = list_images(a.photos)
    elif KODAK.is_dir():
        photos = list_images(KODAK)
    else:
        photos = builtin_files("photos-all")
    work = Path(a.work or tempfile.mkdtemp(prefix="owndata-quality-"))
    data = make_data(photos, work, a.sigma)
    print(f"{len(photos)} photos, sigma {a.sigma:g}, budget {a.minutes:g} min/mode, work {work}")

    out = {"photos": len(photos), "sigma": a.sigma, "minutes": a.minutes, "modes": {}}
    for mode in a.modes.split(","):
        overrides = common_overrides(a.threads) + data[mode] + a.extra
        spp = seconds_per_step(PRESETS[mode], overrides)
        steps = max(10, int(a.minutes * 60 / spp))
        print(f"{mode}: {spp * 1000:.0f} ms/step -> {steps} steps", flush=True)
        res = run_mode(PRESETS[mode], overrides + [f"train.steps={steps}"], work / "runs", mode)
        res["calibrated_ms_per_step"] = round(spp * 1000, 1)
        out["modes"][mode] = res
        print(
            f"{mode}: {res['psnr']:.2f} dB (noisy input {res['input_psnr']:.2f} dB, "
            f"gain {res['gain']:+.2f} dB) after {res['steps']} steps, {res['train_s']:.0f} s "
            f"training, {res['cpu_s']:.0f} s CPU",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
