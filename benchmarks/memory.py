"""Memory of a real training run: peak RSS, and RSS growth over a long run.

Runs ``n2n-core run`` as a child process and samples the resident set size of
its whole process tree (the CLI and its training worker) from ``/proc`` twice a
second. Two measurements, as the performance issue asks:

- ``quickstart``: the quickstart preset exactly as ``make demo`` runs it: peak RSS.
- ``long``: 2,000 steps at a small crop with validation and snapshots off: RSS
  after the first 10% of the run against RSS at the end. A leak (a tensor kept
  per step, a growing list) shows as growth; allocator noise stays in the MB.

Usage: ``.venv/bin/python benchmarks/memory.py [quickstart|long|both] [--steps N]``.
Linux only (reads ``/proc``). Prints one JSON object per measurement.
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

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def tree_rss_mb(pid: int) -> float:
    """Sum of VmRSS over ``pid`` and all its descendants, in MiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
        todo.extend(_children(p))
    return total / 1024.0


def last_train_step(results: str) -> int:
    """The newest ``train`` step logged by the (only) run under ``results``; -1 before any."""
    step = -1
    for metrics in Path(results).glob("*/metrics.jsonl"):
        try:
            lines = metrics.read_text().splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            if '"kind": "train"' in line or '"kind":"train"' in line:
                try:
                    step = max(step, int(json.loads(line)["step"]))
                except (ValueError, KeyError):
                    continue
                break
    return step


def measure(cmd: list[str], results: str, interval: float = 0.5) -> dict:
    """Run ``cmd``; return its wall time and the sampled (seconds, step, tree RSS MiB) series."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    series: list[tuple[float, int, float]] = []
    while proc.poll() is None:
        series.append((time.time() - t0, last_train_step(results), tree_rss_mb(proc.pid)))
        time.sleep(interval)
    err = proc.stderr.read() if proc.stderr else ""
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    # The kernel's own high-water mark of the largest waited-for descendant (KiB on Linux).
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"wall_s": round(wall, 1), "series": series, "children_maxrss_mb": round(maxrss, 1)}


def n2n_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).parent / "n2n-core"
    return [str(exe), "run", str(ROOT / "presets" / "quickstart.yaml"), *args]


def quickstart(results: str) -> dict:
    m = measure(n2n_cmd("--results-dir", results), results)
    peak = max(r for _, _, r in m["series"]) if m["series"] else 0.0
    return {
        "what": "quickstart run, peak RSS",
        "wall_s": m["wall_s"],
        "peak_tree_rss_mb": round(peak, 1),
        "worker_maxrss_mb": m["children_maxrss_mb"],
    }


def long_run(results: str, steps: int, crop: int) -> dict:
    m = measure(
        n2n_cmd(
            "--results-dir",
            results,
            "--set",
            f"train.steps={steps}",
            "--set",
            f"train.crop={crop}",
            "--set",
            "train.val_every=0",
            "--set",
            "train.snapshot_every=0",
            "--set",
            "train.log_every=50",
        ),
        results,
    )
    series = m["series"]
    # Skip start-up (imports, data loading) and the final validation/snapshot:
    # compare RSS while training between 10-20% of the steps with RSS at 80-100%.
    early = [r for _, s, r in series if 0.10 * steps <= s <= 0.20 * steps]
    late = [r for _, s, r in series if 0.80 * steps <= s < steps]
    e = sum(early) / len(early) if early else float("nan")
    x = sum(late) / len(late) if late else float("nan")
    return {
        "what": f"{steps} steps at crop {crop}, RSS growth",
        "wall_s": m["wall_s"],
        "samples": [len(early), len(late)],
        "rss_at_10pct_mb": round(e, 1),
        "rss_at_90pct_mb": round(x, 1),
        "growth_mb": round(x - e, 1),
        "peak_tree_rss_mb": round(max(r for _, _, r in series), 1) if series else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="?", default="both", choices=["quickstart", "long", "both"])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--crop", type=int, default=32)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="n2n-mem-") as tmp:
        if a.which in ("quickstart", "both"):
            print(json.dumps(quickstart(tmp)), flush=True)
        if a.which in ("long", "both"):
            print(json.dumps(long_run(tmp, a.steps, a.crop)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
