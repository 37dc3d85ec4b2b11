"""Generated run folders and live fake writers for the manager benchmark.

Folders are written as the trainer writes them (the same record classes and
run.json model), with made-up numbers: ``finished_runs`` for a lab's archive,
``LiveWriters`` for a sweep of runs appending at once.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import threading
import time
from pathlib import Path

from n2n_core.runs.records import EventRecord, TrainRecord, ValRecord

PRESET = "name: bench\ntask: image\ntrain:\n  steps: {steps}\n"


def run_json(name: str, status: str, steps: int, started: float, ended: float | None) -> dict:
    return {
        "status": status,
        "name": name,
        "pid": os.getpid() if status == "running" else None,
        "host": socket.gethostname(),
        "command": ["n2n-core", "run", "bench.yaml"],
        "device": "cpu",
        "world_size": 1,
        "precision": "bf16",
        "total_steps": steps,
        "started": started,
        "ended": ended,
        "exit_code": 0 if status == "finished" else None,
        "tags": None,
        "note": None,
        "sweep": None,
        "params": None,
        "process": None,
        "ranks": None,
        "reason": None,
    }


def record_lines(n: int, t0: float, seed: int, val_every: int = 10) -> list[str]:
    """``n`` records: a start event, train records with a validation every ``val_every``,
    a finish event."""
    rng = random.Random(seed)
    out = [EventRecord(step=0, time=t0, msg="started: cpu x1 bf16", level="info").to_line()]
    t = t0
    for i in range(1, n - 1):
        t += 3.5
        step = i * 100
        if i % val_every == 0:
            psnr = 20.4 + 10 * (1 - math.exp(-i / 50)) + rng.gauss(0, 0.05)
            rec = ValRecord(step=step, time=t, psnr=psnr, input_psnr=20.4, dataset="kodak")
        else:
            loss = 0.01 + 0.02 * math.exp(-i / 40) + rng.gauss(0, 0.0005)
            rec = TrainRecord(step=step, time=t, loss=loss, lr=5e-4, ms_per_step=35 + rng.random())
        out.append(rec.to_line())
    out.append(
        EventRecord(step=(n - 2) * 100, time=t + 1, msg="finished in 0:10", level="info").to_line()
    )
    return out


def finished_runs(results: Path, count: int, records: int) -> None:
    """``count`` finished run folders of ``records`` records each under ``results``."""
    results.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000.0
    for i in range(count):
        d = results / f"{i:05d}-bench-{i % 97}"
        d.mkdir()
        lines = record_lines(records, t0 + i * 3600, seed=i)
        steps = (records - 2) * 100
        (d / "metrics.jsonl").write_text("".join(lines))
        info = run_json(d.name[6:], "finished", steps, t0 + i * 3600, t0 + i * 3600 + 3000)
        (d / "run.json").write_text(json.dumps(info, indent=2))
        (d / "preset.yaml").write_text(PRESET.format(steps=steps))
        (d / "log.txt").write_text("step 100\n")


class LiveWriters:
    """``count`` runs marked running (this process's pid, so they read as alive), each
    appending one train record every ``interval`` seconds, with its write time as the
    record's ``time``; ``latencies`` holds the (run, step, written-at) of every write."""

    def __init__(self, results: Path, count: int, interval: float = 1.0):
        self.results = results
        self.interval = interval
        self.dirs: list[Path] = []
        self.written: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        results.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for i in range(count):
            d = results / f"{90000 + i:05d}-live-{i}"
            d.mkdir()
            (d / "metrics.jsonl").write_text("".join(record_lines(3, now, seed=i)[:1]))
            (d / "run.json").write_text(
                json.dumps(run_json(d.name[6:], "running", 10**6, now, None))
            )
            (d / "preset.yaml").write_text(PRESET.format(steps=10**6))
            self.dirs.append(d)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        step = 0
        files = [open(d / "metrics.jsonl", "a") for d in self.dirs]  # noqa: SIM115
        try:
            while not self._stop.wait(self.interval * 0.1):
                step += 100
                # Spread the writes over the interval, as independent runs would.
                gap = self.interval / max(len(files), 1) * 0.9
                for d, f in zip(self.dirs, files, strict=True):
                    t = time.time()
                    f.write(
                        TrainRecord(
                            step=step, time=t, loss=0.02, lr=5e-4, ms_per_step=35.0
                        ).to_line()
                    )
                    f.flush()
                    self.written[(d.name, step)] = t
                    if self._stop.wait(gap):
                        break
        finally:
            for f in files:
                f.close()
