"""A killed launcher takes its ranks with it; signals to its pid stop every rank.

Real ``--nproc 2`` CPU runs: the launcher is killed (SIGKILL to its pid alone,
or the TUI's stop escalating to SIGKILL), then no process of the run is left
within seconds, nothing more is written, and ``resume`` finishes bit-identical
to a run left alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import n2n, wait_for
from safetensors.torch import load_file

from n2n_core.process.identity import catches_signal, children_of, rank_listens
from n2n_core.runs import stop as runstop
from n2n_core.runs.info import effective_status, read_run_info

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal"),
]

STEPS = 24
SETTINGS = dict(train__steps=STEPS, train__snapshot_every=4, train__val_every=0, train__log_every=4)


def _final(run_dir: Path) -> dict[str, torch.Tensor]:
    t = load_file(run_dir / "snapshots" / "final.safetensors")
    return {k: v for k, v in t.items() if k.startswith("net.")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, photo_dir, val_dir):
    """Final weights of the same ``--nproc 2`` run, left alone."""
    import yaml

    d = tmp_path_factory.mktemp("ref")
    preset = _preset(d, photo_dir, val_dir)
    r = n2n("run", preset, "--nproc", "2", "--results-dir", d / "res")
    assert r.code == 0, r.err
    assert yaml.safe_load(preset.read_text())["train"]["steps"] == STEPS
    return _final(d / "res" / "00000-tiny")


def _preset(d: Path, photo_dir, val_dir) -> Path:
    import yaml

    data = {
        "name": "tiny",
        "task": "image",
        "noise": {"type": "gaussian"},
        "targets": "noisy",
        "data": {"train": str(photo_dir), "val": str(val_dir), "samples": 1},
        "train": {"steps": STEPS, "batch": 2, "crop": 32, "lr": 0.001, "seed": 0},
        "runtime": {"device": "cpu", "precision": "fp32", "threads": 1},
    }
    for key, value in SETTINGS.items():
        sect, name = key.split("__")
        data[sect][name] = value
    path = d / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(preset: Path, results: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "n2n_core.cli", "run", str(preset), "--nproc", "2"]
        + ["--results-dir", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_for(pred, proc, timeout=180.0) -> bool:
    return wait_for(pred, proc, timeout)


def _processes_of(run_dir: Path) -> list[int]:
    """Every live process whose command line names the run folder (torchrun, ranks)."""
    want = str(run_dir.resolve()).encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if want in cmd and state != "Z":
            out.append(int(entry.name))
    return out


def _ranks_of(run_dir: Path, launcher: subprocess.Popen):
    """True once this launcher's rank 0 has recorded every rank (not an earlier launch's)."""

    def ready() -> bool:
        info = read_run_info(run_dir)
        return info is not None and info.pid == launcher.pid and info.ranks is not None

    return ready


def _past_snapshot(run_dir: Path, step: int):
    snap = run_dir / "snapshots" / f"snapshot-{step:08d}.safetensors"

    def ready() -> bool:
        info = read_run_info(run_dir)
        return info is not None and info.ranks is not None and snap.exists()

    return ready


def _assert_nothing_left_soon(run_dir: Path) -> None:
    deadline = time.monotonic() + 5.0
    while _processes_of(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_of(run_dir) == [], "a process of the run outlived its launcher"


def _assert_nothing_left(run_dir: Path) -> None:
    _assert_nothing_left_soon(run_dir)
    metrics = run_dir / "metrics.jsonl"
    size, t_dead = metrics.stat().st_size, time.time()
    time.sleep(1.0)
    assert metrics.stat().st_size == size, "a record was appended after the launcher died"
    times = [json.loads(x)["time"] for x in metrics.read_text().splitlines() if x.strip()]
    assert max(times) < t_dead
    assert not (run_dir / "snapshots" / "final.safetensors").exists(), "finished before the kill"
    assert effective_status(read_run_info(run_dir), run_dir) == "interrupted"  # resumable


def _resume(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "n2n_core.cli", "resume", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_killed_launcher_takes_every_rank_then_resume_is_bit_identical(
    reference, tmp_path, photo_dir, val_dir
):
    preset = _preset(tmp_path, photo_dir, val_dir)
    run_dir = tmp_path / "res" / "00000-tiny"

    # 1. SIGKILL to the pid run.json names (not its group), after the snapshot at step 8.
    proc = _start(preset, tmp_path / "res")
    assert _wait_for(_past_snapshot(run_dir, 8), proc), proc.stderr.read().decode()
    assert len(_processes_of(run_dir)) == 3  # torchrun + 2 ranks, each in a session of its own
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _assert_nothing_left(run_dir)

    # 2. The TUI's stop with a grace far shorter than the 4 steps to the next agreed
    #    stop: it escalates to SIGKILL, and that reaches every rank too.
    proc = _resume(run_dir)
    assert _wait_for(_past_snapshot(run_dir, 16), proc), proc.stderr.read().decode()
    res = runstop.stop_run(run_dir, grace=0.05, poll=0.01)
    assert res.outcome == "killed", res
    assert proc.wait(timeout=30) == -signal.SIGKILL
    _assert_nothing_left(run_dir)

    # 3. Left alone now: the same weights as the run that was never interrupted.
    r = n2n("resume", run_dir)
    assert r.code == 0, r.err
    got = _final(run_dir)
    assert reference.keys() == got.keys()
    for k in reference:
        assert torch.equal(reference[k], got[k]), k
    assert read_run_info(run_dir).status == "finished"
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if r["kind"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS


def test_ctrl_c_stops_every_rank_cleanly_and_a_killed_torchrun_is_recorded(
    tmp_path, photo_dir, val_dir
):
    preset = _preset(tmp_path, photo_dir, val_dir)
    run_dir = tmp_path / "res" / "00000-tiny"
    proc = _start(preset, tmp_path / "res")
    metrics = run_dir / "metrics.jsonl"
    assert _wait_for(lambda: metrics.exists() and '"train"' in metrics.read_text(), proc)
    # SIGINT to the pid alone (SIGTERM takes the same path): as Ctrl-C, `kill -INT PID`.
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    err = proc.stderr.read().decode()
    assert "Traceback" not in err and "SignalException" not in err, err
    info = read_run_info(run_dir)
    assert info.status == "stopped"
    assert list((run_dir / "snapshots").glob("snapshot-*.safetensors"))
    _assert_nothing_left_soon(run_dir)

    # torchrun itself killed (the OOM killer's pick): its ranks die with it, and the
    # launcher, still alive, records why the run failed since no rank could.
    proc = _resume(run_dir)
    assert _wait_for(_ranks_of(run_dir, proc), proc)
    (agent,) = children_of(proc.pid)
    os.kill(agent, signal.SIGKILL)
    assert proc.wait(timeout=60) == 1
    err = proc.stderr.read().decode()
    assert "Traceback" not in err and "killed by SIGKILL" in err, err
    info = read_run_info(run_dir)
    assert info.status == "failed" and "torchrun was killed by SIGKILL" in info.reason
    _assert_nothing_left_soon(run_dir)


def test_ctrl_c_while_the_ranks_start_is_a_clean_stop(tmp_path, photo_dir, val_dir):
    """A stop sent while the ranks are still importing torch: it waits until each rank
    listens, then the run stops at its first agreed step with a snapshot -- not
    ranks dead of SIGTERM and a run called failed."""
    preset = _preset(tmp_path, photo_dir, val_dir)
    run_dir = tmp_path / "res" / "00000-tiny"
    proc = _start(preset, tmp_path / "res")

    def ranks_spawned() -> bool:
        agents = children_of(proc.pid)
        return bool(agents) and len(children_of(agents[0])) >= 1

    assert _wait_for(ranks_spawned, proc, timeout=60)
    assert read_run_info(run_dir) is None or read_run_info(run_dir).ranks is None
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    err = proc.stderr.read().decode()
    assert "error:" not in err and "Traceback" not in err, err
    info = read_run_info(run_dir)
    assert info.status == "stopped", info
    assert list((run_dir / "snapshots").glob("snapshot-*.safetensors"))
    _assert_nothing_left_soon(run_dir)


def test_catches_signal_reads_whether_a_process_listens():
    assert catches_signal(os.getpid(), signal.SIGUSR2) is False
    old = signal.signal(signal.SIGUSR2, lambda *_: None)
    try:
        assert catches_signal(os.getpid(), signal.SIGUSR2) is True
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert catches_signal(2**22 + 12345, signal.SIGTERM) is None  # no such process


def test_a_rank_listens_once_it_is_that_rank_and_handles_the_signal(tmp_path):
    """A handler inherited across fork (torchrun's agent catches SIGTERM) is not the rank's:
    only a process whose command line names the run, and which catches it, listens."""
    code = (
        "import signal, sys, time; sys.stdin.readline(); "
        "signal.signal(signal.SIGTERM, lambda *a: None); print('ready', flush=True); "
        "time.sleep(60)"
    )
    run_dir = tmp_path / "00000-x"
    p = subprocess.Popen(
        [sys.executable, "-c", code, "n2n_core.training.rank", str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(lambda: "n2n_core.training.rank" in _cmdline_of(p.pid), p, timeout=30)
        assert rank_listens(p.pid, run_dir, signal.SIGTERM) is False  # not handling it yet
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "ready"
        assert rank_listens(p.pid, run_dir, signal.SIGTERM) is True
        assert rank_listens(p.pid, tmp_path / "other", signal.SIGTERM) is False
        assert rank_listens(os.getpid(), run_dir, signal.SIGINT) is False  # not a rank
    finally:
        p.kill()
        p.wait()
    assert rank_listens(p.pid, run_dir, signal.SIGTERM) is None  # gone


def _cmdline_of(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_a_rank_killed_by_a_signal_is_one_error_line_naming_it(tmp_path, photo_dir, val_dir):
    """No torchrun log lines, traceback or failure table: the rank that died and how,
    first, then what its peer said about losing it."""
    import yaml

    preset = _preset(tmp_path, photo_dir, val_dir)
    data = yaml.safe_load(preset.read_text())
    data["train"]["steps"] = 100_000  # still training when the signal comes
    preset.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "res" / "00000-tiny"
    proc = _start(preset, tmp_path / "res")
    assert _wait_for(_ranks_of(run_dir, proc), proc)
    victim = read_run_info(run_dir).ranks[1]["pid"]
    os.kill(victim, signal.SIGABRT)
    assert proc.wait(timeout=120) == 1
    err = proc.stderr.read().decode()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[0] == f"error: rank 1 (pid {victim}) died of SIGABRT", err
    assert all(ln.startswith(("error: ", "run failed")) for ln in lines), err
    assert "Traceback" not in err and "ChildFailedError" not in err
    assert read_run_info(run_dir).status == "failed"
    _assert_nothing_left_soon(run_dir)
