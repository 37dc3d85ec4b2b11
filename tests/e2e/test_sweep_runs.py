"""Tiny CPU sweeps through the CLI: each point is a real `n2n-core resume` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, n2n, n2n_in_process

from n2n_core.sweeps.local import DeviceClaim, plan_slots
from n2n_core.sweeps.view import read_view


def _cli_view(sweep_dir: Path) -> dict:
    r = n2n_in_process("sweep", "status", sweep_dir, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def _view(sweep_dir: Path) -> dict:
    return json.loads(json.dumps(read_view(sweep_dir).to_json()))  # as --json prints it


def _wait(cond, timeout: float = 240.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _sweep_json(sweep_dir: Path) -> dict:
    try:
        return json.loads((sweep_dir / "sweep.json").read_text())
    except (OSError, ValueError):
        return {}


def _train_steps(run_dir: Path) -> list[int]:
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return []
    return [json.loads(ln)["step"] for ln in lines if '"kind":"train"' in ln]


@pytest.mark.slow
def test_two_by_two_sweep_gives_four_runs(make_preset, tmp_path):
    res = tmp_path / "res"
    preset = make_preset(train__steps=2, train__val_every=0, train__snapshot_every=0)
    r = n2n(
        "sweep",
        preset,
        "--grid",
        "train.lr=1e-3,2e-3",
        "--grid",
        "noise.val_sigma=15,25",
        "--slots",
        "2",
        "--name",
        "grid",
        "--results-dir",
        res,
    )
    assert r.code == 0, (r.out, r.err)
    sweep_dir = res / "sweeps" / "00000-grid"
    view = _cli_view(sweep_dir)
    assert view["status"] == "finished"
    points = view["points"]
    assert [p["status"] for p in points] == ["finished"] * 4
    runs = {p["run"] for p in points}
    assert len(runs) == 4 and all(
        (res / run / "snapshots" / "final.safetensors").is_file() for run in runs
    )
    assert all(p["best_psnr"] is not None and p["step"] == 2 for p in points)
    seen = set()
    for p in points:
        info = json.loads((res / p["run"] / "run.json").read_text())
        assert info["sweep"] == "sweeps/00000-grid"
        assert info["params"] == p["params"]
        seen.add((info["params"]["train.lr"], info["params"]["noise.val_sigma"]))
    assert seen == {(0.001, 15), (0.001, 25), (0.002, 15), (0.002, 25)}
    assert "point 3" in (sweep_dir / "scheduler.log").read_text()
    # The points are ordinary runs: listed, tagged, filtered by preset key.
    listed = json.loads(n2n_in_process("runs", "--results-dir", res, "--json").out)["runs"]
    assert len(listed) == 4
    assert n2n_in_process("tag", res / points[0]["run"], "+best", "+paper").code == 0
    tagged = json.loads(n2n_in_process("runs", "--results-dir", res, "--tag", "best", "--json").out)
    assert [x["name"] for x in tagged["runs"]] == ["grid-p0"]
    assert tagged["runs"][0]["tags"] == ["best", "paper"]
    where = n2n_in_process("runs", "--results-dir", res, "--where", "noise.val_sigma=25", "--json")
    assert sorted(x["params"]["train.lr"] for x in json.loads(where.out)["runs"]) == [0.001, 0.002]
    r = n2n_in_process("sweep", "resume", sweep_dir)
    assert_user_error(r, "nothing to resume")


@pytest.mark.slow
def test_sigkilled_scheduler_resumes_without_rerunning(make_preset, tmp_path):
    res = tmp_path / "res"
    preset = make_preset(train__val_every=0, train__snapshot_every=0, train__log_every=5)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("N2N_DEBUG", None)
    argv = [sys.executable, "-m", "n2n_core.cli", "sweep", preset, "--grid", "train.steps=4,100"]
    scheduler = subprocess.Popen(
        [*map(str, argv), "--name", "kill", "--results-dir", str(res)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    sweep_dir = res / "sweeps" / "00000-kill"
    try:
        first, second = res / "00000-kill-p0", res / "00001-kill-p1"
        _wait(lambda: _sweep_json(sweep_dir).get("status") == "running", what="the scheduler")
        # A second scheduler on the same sweep refuses.
        assert_user_error(n2n_in_process("sweep", "resume", sweep_dir), "already running")
        _wait(lambda: _train_steps(second), what="the second point to train")
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait(timeout=30)
        finished_first = (first / "metrics.jsonl").read_bytes()
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait()
    # The orphaned point got SIGTERM: it stops at its next log step with a snapshot.
    _wait(
        lambda: json.loads((second / "run.json").read_text())["status"] == "stopped",
        timeout=120,
        what="the interrupted point to stop",
    )
    stopped_at = max(_train_steps(second))
    assert stopped_at < 100
    assert _view(sweep_dir)["status"] == "interrupted"

    r = n2n("sweep", "resume", sweep_dir)
    assert r.code == 0, (r.out, r.err)
    view = _view(sweep_dir)
    assert [p["status"] for p in view["points"]] == ["finished", "finished"]
    assert (first / "metrics.jsonl").read_bytes() == finished_first  # not re-run
    events = [
        json.loads(ln)["msg"]
        for ln in (second / "metrics.jsonl").read_text().splitlines()
        if '"kind":"event"' in ln
    ]
    assert any(m.startswith(f"resumed at step {stopped_at}") for m in events), events
    assert max(_train_steps(second)) == 100


@pytest.mark.slow
def test_failing_point_does_not_stop_the_others(make_preset, photo_dir, tmp_path):
    empty = tmp_path / "empty"  # exists (so the sweep starts) but holds no images
    empty.mkdir()
    preset = make_preset(train__steps=2, train__val_every=0, train__snapshot_every=0)
    res = tmp_path / "res"
    missing = tmp_path / "missing"
    r = n2n_in_process(
        "sweep", preset, "--grid", f"data.train={photo_dir},{missing}", "--results-dir", res
    )
    assert_user_error(r, "data.train", "path not found")  # caught before anything starts
    assert not res.exists()
    grid = f"data.train={empty},{photo_dir}"
    r = n2n("sweep", preset, "--grid", grid, "--slots", "2", "--results-dir", res)
    assert r.code == 1, (r.out, r.err)
    sweep_dir = res / "sweeps" / "00000-tiny"
    view = _view(sweep_dir)
    assert view["status"] == "failed"
    assert view["message"] == "1 of 2 points failed"
    assert [p["status"] for p in view["points"]] == ["failed", "finished"]
    # The failed point keeps its folder, and its console output says why.
    assert (res / view["points"][0]["run"] / "run.json").is_file()
    log = (sweep_dir / "points" / f"{view['points'][0]['run']}.log").read_text()
    assert "error:" in log


@pytest.mark.slow
def test_detached_sweep_cancel_stops_running_and_drops_pending(make_preset, tmp_path):
    res = tmp_path / "res"
    preset = make_preset(train__steps=3000, train__val_every=0, train__snapshot_every=0)
    r = n2n("sweep", preset, "--grid", "train.lr=1e-3,2e-3", "--detach", "--results-dir", res)
    assert r.code == 0, r.err
    sweep_dir = res / "sweeps" / "00000-tiny"
    _wait(lambda: _train_steps(res / "00000-tiny-p0"), what="the first point to train")
    r = n2n("sweep", "cancel", sweep_dir)
    assert r.code == 0, (r.out, r.err)
    view = _view(sweep_dir)
    assert view["status"] == "cancelled"
    assert [p["status"] for p in view["points"]] == ["stopped", "cancelled"]
    assert json.loads((res / "00000-tiny-p0" / "run.json").read_text())["status"] == "stopped"
    assert json.loads((res / "00001-tiny-p1" / "run.json").read_text())["status"] == "queued"
    assert not view["scheduler_alive"]


@pytest.mark.slow
def test_slurm_path_through_submitit_local_executor(make_preset, tmp_path):
    pytest.importorskip("submitit")
    res = tmp_path / "res"
    preset = make_preset(train__steps=2, train__val_every=0, train__snapshot_every=0)
    r = n2n(
        "sweep",
        preset,
        "--grid",
        "train.lr=1e-3",
        "--executor",
        "slurm",
        "--set",
        "slurm.cluster=local",
        "--set",
        "slurm.partition=gpu",
        "--results-dir",
        res,
    )
    assert r.code == 0, (r.out, r.err)
    sweep_dir = res / "sweeps" / "00000-tiny"
    view = _view(sweep_dir)
    (point,) = view["points"]
    assert point["status"] == "finished" and point["job_id"]
    assert point["job_state"] == "FINISHED"
    assert (sweep_dir / "slurm" / point["job_id"]).is_dir()  # submitit's job files
    assert json.loads((res / point["run"] / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_queued_run_waits_for_its_devices(make_preset, tmp_path):
    res = tmp_path / "res"
    held = DeviceClaim(res / "sweeps", plan_slots("cpu", [], nproc=1, cores=2)[0])
    assert held.acquire()  # another sweep holds the CPU slot
    try:
        preset = make_preset(train__steps=2, train__val_every=0, train__snapshot_every=0)
        r = n2n("sweep", preset, "--name", "later", "--detach", "--results-dir", res)
        assert r.code == 0, r.err
        sweep_dir = res / "sweeps" / "00000-later"
        log = sweep_dir / "scheduler.log"
        _wait(lambda: log.exists() and "waiting" in log.read_text(), what="the queue")
        run = res / "00000-later"  # a one-point sweep: the run is named as it
        assert json.loads((run / "run.json").read_text())["status"] == "queued"
        # Cancelled while it waits: it never starts, and can be resumed later.
        r = n2n("sweep", "cancel", sweep_dir)
        assert r.code == 0, (r.out, r.err)
    finally:
        held.release()
    view = _view(sweep_dir)
    assert view["status"] == "cancelled" and view["points"][0]["status"] == "cancelled"
    assert json.loads((run / "run.json").read_text())["status"] == "queued"
