"""Replay of a 1,000,000-line metrics log: final state vs. the bare JSON parse of the file.

    .venv/bin/python benchmarks/bench_replay.py [--lines N] [--app]

Measured side by side on the same file (best of 3 each):
  parse   - ``[json.loads(line) for line in file]``: the floor any reader pays
  replay  - what ``n2n-tui --replay RUN --speed 0`` does before drawing: read,
            parse and ingest into the dashboard's bounded series
  app     - (--app) the whole headless TUI: start, replay, first draw of the final state
Prints the ratio replay / parse (and app / parse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import tempfile
import time
from pathlib import Path

from n2n_tui.models.follow import RunFollower
from n2n_tui.models.replay import ReplayPlayer


def write_log(path: Path, lines: int) -> None:
    rng = random.Random(0)
    t = 1_760_000_000.0
    with open(path, "w") as f:
        buf = []
        for i in range(1, lines + 1):
            t += 0.031
            if i % 100 == 0:
                psnr = 20.17 + 11 * (1 - math.exp(-i / 200_000)) + rng.gauss(0, 0.03)
                rec = {
                    "kind": "val",
                    "step": i,
                    "time": t,
                    "psnr": psnr,
                    "input_psnr": 20.17,
                    "dataset": "kodak",
                }
            elif i % 5000 == 0:
                rec = {
                    "kind": "event",
                    "step": i,
                    "time": t,
                    "msg": f"snapshot-{i:08d}",
                    "level": "info",
                }
            else:
                loss = 0.01 + 0.03 * math.exp(-i / 50_000) + rng.gauss(0, 0.001)
                rec = {
                    "kind": "train",
                    "step": i,
                    "time": t,
                    "loss": loss,
                    "lr": 3e-4,
                    "ms_per_step": 31.0 + rng.random(),
                }
            buf.append(json.dumps(rec))
            if len(buf) >= 10_000:
                f.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            f.write("\n".join(buf) + "\n")


def bare_parse(path: Path) -> int:
    with open(path, "rb") as f:
        return len([json.loads(line) for line in f])


def replay_final(run_dir: Path) -> int:
    feed = RunFollower(run_dir)
    ReplayPlayer(feed, speed=0).run(cancelled=lambda: True)
    return feed.values.step


def app_final(run_dir: Path) -> int:
    from n2n_tui.app import N2NApp

    async def go() -> int:
        app = N2NApp(replay=run_dir, speed=0)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.screen
            while not screen.replay.done:
                await pilot.pause(0.005)
            screen.redraw()
            await pilot.pause()
            return screen.feed.values.step

    return asyncio.run(go())


def best_of(fn, arg, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--app", action="store_true", help="also time the whole headless TUI")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "00000-bench"
        run.mkdir()
        log = run / "metrics.jsonl"
        write_log(log, args.lines)
        (run / "run.json").write_text(json.dumps({"status": "finished", "total_steps": args.lines}))
        size = log.stat().st_size / 1e6
        assert replay_final(run) == args.lines
        t_parse = best_of(bare_parse, log)
        t_replay = best_of(replay_final, run)
        print(f"metrics.jsonl: {args.lines:,} lines, {size:.0f} MB")
        print(f"bare JSON parse      {t_parse:7.2f} s")
        print(f"replay --speed 0     {t_replay:7.2f} s   ratio {t_replay / t_parse:.2f}x")
        if args.app:
            t_app = best_of(app_final, run, n=1)
            print(f"headless n2n-tui     {t_app:7.2f} s   ratio {t_app / t_parse:.2f}x")


if __name__ == "__main__":
    main()
