"""Flat colour fields larger than any training crop: does a snapshot keep them flat?

A network trained on 64-pixel crops never sees the inside of a flat region larger
than its crop (every position of its deepest maps touches the padding). This
denoises flat fields of saturated and grey colours, 64, 256 and 512 pixels a
side, with Gaussian noise (sigma 25, seed 0), and prints per snapshot the worst
and mean PSNR over the large fields beside the 64-pixel ones. A sound network
scores about the same on both (35-45 dB); a broken one falls to single digits
on the large fields only (benchmarks/RESULTS.md, "Flat fields").

    .venv/bin/python benchmarks/flat_fields.py SNAPSHOT [SNAPSHOT ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from n2n_core.engine.snapshots import load_network  # noqa: E402
from n2n_core.evaluation.protocol import clip_to_uint8, infer_float, psnr, torch_runner  # noqa: E402

# sky blue, deep blue, grass green, red, yellow, grey (0..1 per channel)
COLOURS = [
    (0.2, 0.4, 0.8),
    (0.05, 0.3, 0.9),
    (0.1, 0.6, 0.1),
    (0.8, 0.2, 0.1),
    (0.95, 0.85, 0.1),
    (0.5, 0.5, 0.5),
]
SMALL, LARGE = (64,), (256, 512)


def field_scores(snapshot: str, sizes: tuple[int, ...], sigma: float = 25.0) -> list[float]:
    net, _ = load_network(snapshot)
    run = torch_runner(net, torch.device("cpu"))
    rng = np.random.default_rng(0)
    scores = []
    for colour in COLOURS:
        for n in sizes:
            clean = np.ones((3, n, n), np.float32) * np.array(colour, np.float32)[:, None, None]
            clean -= 0.5
            noisy = clean + rng.normal(0, sigma / 255, clean.shape).astype(np.float32)
            scores.append(psnr(clip_to_uint8(infer_float(run, noisy)), clip_to_uint8(clean)))
    return scores


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshots", nargs="+")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    for snap in a.snapshots:
        small, large = field_scores(snap, SMALL), field_scores(snap, LARGE)
        rows.append(
            {
                "snapshot": snap,
                "small_worst": round(min(small), 2),
                "large_worst": round(min(large), 2),
                "large_mean": round(float(np.mean(large)), 2),
            }
        )
    if a.json:
        print(json.dumps(rows))
        return 0
    print(f"{'snapshot':60} {'64px worst':>10} {'256/512 worst':>14} {'mean':>6}")
    for r in rows:
        print(
            f"{r['snapshot'][-60:]:60} {r['small_worst']:10.2f} "
            f"{r['large_worst']:14.2f} {r['large_mean']:6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
