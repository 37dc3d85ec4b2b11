"""What the manager costs: the run it watches, its start and idle CPU, replay, live runs.

    .venv/bin/python benchmarks/bench_manager.py [--sections watch,start,runs,replay,live]
        [--quick] [--baseline-python OTHER/.venv/bin/python]

Every figure is measured in this one run, in child processes, side by side:

  watch   a real quickstart run's ms/step while nothing watches it, and while
          n2n-tui shows its dashboard (pictures on) in tmux at 200x50 and at 80x24;
          phases alternate within the one run, the first seconds of each skipped.
          Goal: >= 97% of the unwatched step rate at 200x50.
  start   n2n-tui in tmux (200x50) over 1,000 runs (400 records each) and 10,000
          runs (100 each): seconds until the Runs screen lists them all (first
          open: nothing cached; again: summaries cached), then its CPU while idle.
          Goals: <= 1.5 s and <= 1% of a core at 10,000.
  runs    `n2n-core runs` and `runs --json` on the same folders. Goal: <= 2 s at 10,000.
  replay  a 1M- and a 10M-line metrics.jsonl: the bare parse (json.loads of every
          line) against `n2n-tui --replay RUN --speed 0` run headless to its final
          state, with each one's peak memory. Goals: <= 1.0x the parse, memory flat.
  live    100 runs appending a record a second each while n2n-tui shows the Runs
          screen in tmux (200x50): its CPU, and the seconds from a record's write to
          its step showing on screen. Goals: <= 25% of a core, <= 1 s.

With --baseline-python (another checkout's venv) every measurement is taken for
both, one after the other, and printed side by side with the ratio new/old.
The machine should be quiet: name the CPU with the results (printed first).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _fake_runs import LiveWriters, finished_runs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TMUX = "n2nbench"
NEUTRAL = tempfile.gettempdir()  # children run here, never in a checkout (see tui_start)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                amx = "with AMX" if "amx_bf16" in flags else "without AMX"
                return f"{line.split(':', 1)[1].strip()} ({amx}), {os.cpu_count()} cores"
    except OSError:
        pass
    return "unknown CPU"


# -- tmux --------------------------------------------------------------------------------


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def tui_start(python: str, size: tuple[int, int], args: list[str], env: dict | None = None) -> int:
    """n2n-tui in a fresh detached tmux session; returns its pid."""
    tmux("kill-session", "-t", TMUX)
    cmd = " ".join([f"exec {python} -m n2n_tui.app", *map(shlex_quote, args)])
    full_env = {**os.environ, "N2N_IMAGES": "halfblock", **(env or {})}
    # Started outside any checkout: `python -m` puts the working folder first on the path.
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            TMUX,
            "-x",
            str(size[0]),
            "-y",
            str(size[1]),
            "-c",
            NEUTRAL,
            cmd,
        ],
        check=True,
        env=full_env,
    )
    return int(tmux("display-message", "-p", "-t", TMUX, "#{pane_pid}").strip())


def shlex_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", TMUX)


def tui_stop() -> None:
    tmux("kill-session", "-t", TMUX)


def wait_screen(pattern: str, timeout: float, every: float = 0.02) -> float | None:
    """Seconds until the screen matches ``pattern`` (None: it never did)."""
    t0 = time.perf_counter()
    rx = re.compile(pattern)
    while time.perf_counter() - t0 < timeout:
        if rx.search(screen()):
            return time.perf_counter() - t0
        time.sleep(every)
    return None


def cpu_over(pid: int, seconds: float) -> float:
    """Percent of one core the process (and its threads) used over ``seconds``."""
    p = psutil.Process(pid)
    c0, t0 = p.cpu_times(), time.perf_counter()
    time.sleep(seconds)
    c1, t1 = p.cpu_times(), time.perf_counter()
    return 100.0 * ((c1.user - c0.user) + (c1.system - c0.system)) / (t1 - t0)


# -- watch: the run the manager watches ----------------------------------------------------


def section_watch(python: str, quick: bool) -> list[tuple[str, str, float]]:
    phase_s = 12.0 if quick else 25.0
    settle_s = 4.0
    plan = ["off", "200x50", "off", "80x24"] * (1 if quick else 2) + ["off"]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        bindir = Path(python).parent
        run = subprocess.Popen(
            [
                str(bindir / "n2n-core"),
                "run",
                str(REPO / "presets" / "quickstart.yaml"),
                "--results-dir",
                str(results),
                "--set",
                "train.steps=1000000",
                "--set",
                "train.val_every=500",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=NEUTRAL,
        )
        try:
            # Pictures exist once the first validation has written its strips.
            deadline = time.time() + 300
            while not list(results.glob("*/samples/*.png")) and time.time() < deadline:
                if run.poll() is not None:
                    raise RuntimeError(f"the training run ended early (exit {run.returncode})")
                time.sleep(0.5)
            run_dir = next(results.glob("0*"))
            phases: list[tuple[str, float, float]] = []
            for cond in plan:
                if cond != "off":
                    w, h = map(int, cond.split("x"))
                    tui_start(python, (w, h), ["--results-dir", str(results)])
                    if wait_screen(r"1 run", 30) is not None:
                        tmux("send-keys", "-t", TMUX, "Enter")
                        wait_screen(r"samples", 15)
                t0 = time.time()
                time.sleep(phase_s)
                phases.append((cond, t0 + settle_s, time.time()))
                if cond != "off":
                    tui_stop()
        finally:
            os.killpg(run.pid, signal.SIGINT)
            run.wait(60)
        ms: dict[str, list[float]] = {}
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") != "train" or rec.get("ms_per_step") is None:
                continue
            for cond, a, b in phases:
                if a <= rec["time"] <= b:
                    ms.setdefault(cond, []).append(rec["ms_per_step"])
    base = statistics.median(ms["off"])
    out = [("watch", "unwatched ms/step (median)", base)]
    for cond in ("200x50", "80x24"):
        if cond in ms:
            m = statistics.median(ms[cond])
            out.append(("watch", f"watched {cond} ms/step", m))
            out.append(("watch", f"watched {cond}: share of unwatched rate", base / m))
    return out


# -- start / runs: many finished runs -----------------------------------------------------


def clear_caches(results: Path) -> None:
    for p in results.glob(".n2n-summaries.json"):  # n2n_core.runs.cache.CACHE_NAME
        p.unlink()


def tui_first_screen(python: str, results: Path, n: int) -> tuple[float | None, float]:
    t0 = time.perf_counter()
    pid = tui_start(python, (200, 50), ["--results-dir", str(results)])
    seen = wait_screen(rf"\b{n:,} runs\b|\b{n} runs\b", 120)
    first = None if seen is None else time.perf_counter() - t0
    time.sleep(3)  # whatever the first screen started settles
    idle = cpu_over(pid, 10.0)
    tui_stop()
    return first, idle


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    return time.perf_counter() - t0


def section_start_runs(python: str, quick: bool, sections: set[str], work: Path) -> list:
    out = []
    sizes = [(1000, 400), (10000, 100)] if not quick else [(1000, 100)]
    core = str(Path(python).parent / "n2n-core")
    for n, recs in sizes:
        results = work / f"runs-{n}x{recs}"
        if not results.is_dir():
            finished_runs(results, n, recs)
        clear_caches(results)
        if "runs" in sections:
            out.append(
                (
                    "runs",
                    f"{n:,} runs: n2n-core runs, first",
                    timed([core, "runs", "--results-dir", str(results)]),
                )
            )
            out.append(
                (
                    "runs",
                    f"{n:,} runs: n2n-core runs, again",
                    timed([core, "runs", "--results-dir", str(results)]),
                )
            )
            out.append(
                (
                    "runs",
                    f"{n:,} runs: runs --json, again",
                    timed([core, "runs", "--json", "--results-dir", str(results)]),
                )
            )
        if "start" in sections:
            clear_caches(results)
            first, idle = tui_first_screen(python, results, n)
            out.append(("start", f"{n:,} runs: Runs screen shown, first open (s)", first))
            again, idle2 = tui_first_screen(python, results, n)
            out.append(("start", f"{n:,} runs: Runs screen shown, again (s)", again))
            out.append(("start", f"{n:,} runs: idle CPU (% of a core)", idle2))
    return out


# -- replay -------------------------------------------------------------------------------


def write_log(path: Path, lines: int) -> None:
    """A log with a real run's mix: a train and a sys record per log step, a validation
    every 50, a snapshot event every 500."""
    rng = random.Random(0)
    t = 1_760_000_000.0
    sys_rec = {
        "kind": "sys",
        "ranks": [
            {
                "rank": 0,
                "cpu_pct": 95.1,
                "rss_mb": 700.2,
                "ram_used_mb": 9000.5,
                "ram_total_mb": 24105.3,
                "data_wait": 0.03,
                "ms_per_step": 35.2,
                "devices": [],
            }
        ],
    }
    with open(path, "w") as f:
        buf: list[str] = []
        i = step = 0
        while i < lines:
            step += 50
            t += 1.8
            loss = 0.01 + 0.03 * 2.718 ** (-step / 5e6) + rng.gauss(0, 0.001)
            buf.append(
                json.dumps(
                    {
                        "kind": "train",
                        "step": step,
                        "time": t,
                        "loss": loss,
                        "lr": 3e-4,
                        "ms_per_step": 35 + rng.random(),
                    },
                    separators=(",", ":"),
                )
            )
            buf.append(
                json.dumps({**sys_rec, "step": step, "time": t + 0.001}, separators=(",", ":"))
            )
            i += 2
            if step % 2500 == 0:
                buf.append(
                    json.dumps(
                        {
                            "kind": "val",
                            "step": step,
                            "time": t + 0.5,
                            "psnr": 28 + rng.random(),
                            "input_psnr": 20.17,
                            "dataset": "kodak",
                            "images": 24,
                        },
                        separators=(",", ":"),
                    )
                )
                i += 1
            if step % 25000 == 0:
                buf.append(
                    json.dumps(
                        {
                            "kind": "event",
                            "step": step,
                            "time": t + 0.6,
                            "msg": f"snapshot-{step:08d}",
                            "level": "info",
                        },
                        separators=(",", ":"),
                    )
                )
                i += 1
            if len(buf) >= 20000:
                f.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            f.write("\n".join(buf) + "\n")


PARSE = """
import json, resource, sys, time
t = time.perf_counter()
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        json.loads(line)
        n += 1
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

REPLAY_APP = """
import asyncio, resource, sys, time
from pathlib import Path
from n2n_tui.app import N2NApp

async def go():
    t = time.perf_counter()
    app = N2NApp(replay=Path(sys.argv[1]), speed=0)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = app.screen
        while not screen.replay.done:
            await pilot.pause(0.01)
        await pilot.pause(0.3)  # the final state drawn
        step = screen.feed.values.step
    return time.perf_counter() - t, step

dt, step = asyncio.run(go())
assert step > 0
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

STARTUP = """
import asyncio, sys, time
t = time.perf_counter()
from n2n_tui.app import N2NApp
print(time.perf_counter() - t, 0)
"""


def child(python: str, code: str, *args: str) -> tuple[float, float]:
    r = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, cwd=NEUTRAL
    )
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    a, b = r.stdout.split()[-2:]
    return float(a), float(b)


def section_replay(python: str, quick: bool, work: Path) -> list:
    out = []
    for lines in [1_000_000] if quick else [1_000_000, 10_000_000]:
        run = work / f"replay-{lines}" / "00000-bench"
        log = run / "metrics.jsonl"
        if not log.is_file():
            run.mkdir(parents=True)
            write_log(log, lines)
            (run / "run.json").write_text(json.dumps({"status": "finished", "total_steps": 10**9}))
        parse = min(child(python, PARSE, str(log)) for _ in range(2))
        app = min(child(python, REPLAY_APP, str(run)) for _ in range(2))
        imp = min(child(python, STARTUP) for _ in range(2))
        tag = f"{lines / 1e6:.0f}M lines"
        out.append(("replay", f"{tag}: bare parse (s)", parse[0]))
        out.append(("replay", f"{tag}: n2n-tui replay, headless (s)", app[0]))
        out.append(("replay", f"{tag}: ... of which importing the app (s)", imp[0]))
        out.append(("replay", f"{tag}: replay / parse", app[0] / parse[0]))
        out.append(("replay", f"{tag}: peak memory, parse (MiB)", parse[1]))
        out.append(("replay", f"{tag}: peak memory, replay (MiB)", app[1]))
    return out


# -- live: 100 runs writing at once ---------------------------------------------------------

ROW = re.compile(r"\b(9\d{4})\s+live-\d+\s+.*?\s([\d,.]+[kM]?)/")


def parse_count(s: str) -> int:
    s = s.replace(",", "")
    mult = {"k": 1_000, "M": 1_000_000}.get(s[-1:], 1)
    return int(float(s.rstrip("kM")) * mult)


def section_live(python: str, quick: bool, work: Path, count: int = 100) -> list:
    results = work / f"live-{time.time_ns()}"
    writers = LiveWriters(results, count, interval=1.0)
    pid = tui_start(python, (200, 50), ["--results-dir", str(results)])
    wait_screen(rf"\b{count} runs\b", 60)
    writers.start()
    seen: dict[tuple[str, int], float] = {}
    t_end = time.time() + (15 if quick else 30)
    p = psutil.Process(pid)
    c0, w0 = p.cpu_times(), time.perf_counter()
    while time.time() < t_end:
        now = time.time()
        for m in ROW.finditer(screen()):
            key = (m.group(1), parse_count(m.group(2)))
            seen.setdefault(key, now)
        time.sleep(0.05)
    c1, w1 = p.cpu_times(), time.perf_counter()
    writers.stop()
    tui_stop()
    cpu = 100.0 * ((c1.user - c0.user) + (c1.system - c0.system)) / (w1 - w0)
    lat = []
    for (run_id, step), t_seen in seen.items():
        for (name, s), t_written in list(writers.written.items()):
            if s == step and name.startswith(run_id):
                lat.append(t_seen - t_written)
                break
    lat = [x for x in lat if x >= 0]
    out = [("live", f"{count} live runs: n2n-tui CPU (% of a core)", cpu)]
    if lat:
        lat.sort()
        out.append(("live", f"{count} live runs: latency median (s)", statistics.median(lat)))
        out.append(("live", f"{count} live runs: latency p95 (s)", lat[int(0.95 * (len(lat) - 1))]))
        out.append(("live", f"{count} live runs: records seen on screen", float(len(lat))))
    shutil.rmtree(results, ignore_errors=True)
    return out


# -- main ---------------------------------------------------------------------------------


def measure(python: str, sections: set[str], quick: bool, work: Path) -> list:
    out: list = []
    if "watch" in sections:
        out += section_watch(python, quick)
    if sections & {"start", "runs"}:
        out += section_start_runs(python, quick, sections, work)
    if "replay" in sections:
        out += section_replay(python, quick, work)
    if "live" in sections:
        out += section_live(python, quick, work)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="watch,start,runs,replay,live")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, shorter phases")
    ap.add_argument("--python", default=sys.executable, help="the venv python to measure")
    ap.add_argument("--baseline-python", help="another checkout's venv python, measured beside")
    ap.add_argument("--work", help="folder for the generated runs and logs (kept between runs)")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("error: tmux is needed (apt install tmux)")
    sections = set(args.sections.split(","))
    work = Path(args.work or tempfile.mkdtemp(prefix="n2n-bench-manager-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_name()}; load average {os.getloadavg()[0]:.2f} at start")
    new = measure(args.python, sections, args.quick, work)
    old = (
        measure(args.baseline_python, sections, args.quick, work) if args.baseline_python else None
    )
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    head = f"{'section':8} {'measure':58} {'new':>10}"
    if old:
        head += f" {'old':>10} {'new/old':>8}"
    print(head)
    for i, (sec, name, value) in enumerate(new):
        line = f"{sec:8} {name:58} {fmt(value):>10}"
        if old:
            ov = old[i][2] if i < len(old) and old[i][1] == name else None
            ratio = f"{value / ov:.2f}" if value and ov else "-"
            line += f" {fmt(ov):>10} {ratio:>8}"
        print(line)


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"


if __name__ == "__main__":
    main()
