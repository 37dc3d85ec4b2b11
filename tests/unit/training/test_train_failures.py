"""A run that goes wrong ends ``failed`` with an event, keeping the last good snapshot."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from n2n_core.config.preset import load_preset
from n2n_core.engine.snapshots import read_snapshot
from n2n_core.runs.folders import prepare_run
from n2n_core.tasks.image import ImageTask
from n2n_core.training.loop import train_worker


def _events(run_dir):
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == "event"]


def test_non_finite_loss_fails_the_run(make_preset, tmp_path, monkeypatch):
    p = make_preset(train__steps=8, train__snapshot_every=2, train__val_every=0, train__log_every=1)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    real = ImageTask.loss

    def loss(self, pred, target, step):
        out = real(self, pred, target, step)
        return out * float("nan") if step >= 4 else out

    monkeypatch.setattr(ImageTask, "loss", loss)
    assert train_worker(run_dir) == "failed"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed"
    assert any("non-finite loss at step 5" in e["msg"] for e in _events(run_dir))
    snap = read_snapshot(run_dir / "snapshots" / "snapshot-00000004.safetensors")
    assert all(torch.isfinite(v).all() for v in snap.weights.values())
    assert not (run_dir / "snapshots" / "snapshot-00000006.safetensors").exists()
    assert not (run_dir / "snapshots" / "final.safetensors").exists()


def test_disk_full_during_snapshot_keeps_previous(make_preset, tmp_path, monkeypatch):
    import n2n_core.engine.snapshots as snapshots

    p = make_preset(train__steps=8, train__snapshot_every=2, train__val_every=0, train__log_every=1)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    real = snapshots.atomic_write_bytes
    calls = []

    def write(path, data):
        calls.append(path)
        if len(calls) == 2:
            # simulate ENOSPC half-way: a partial temp file, then the error
            tmp = path.with_name("." + path.name + ".tmp-x")
            tmp.write_bytes(data[: len(data) // 2])
            tmp.unlink()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(snapshots, "atomic_write_bytes", write)
    assert train_worker(run_dir) == "failed"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert any("No space left on device" in e["msg"] for e in _events(run_dir))
    read_snapshot(run_dir / "snapshots" / "snapshot-00000002.safetensors")  # still valid
    assert not (run_dir / "snapshots" / "snapshot-00000004.safetensors").exists()


def test_resume_without_a_snapshot_is_a_clear_error(make_preset, tmp_path):
    from cli_helpers import assert_user_error, n2n_in_process

    p = make_preset(train__snapshot_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    before = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()}
    assert_user_error(n2n_in_process("resume", run_dir), "no complete snapshot to resume from")
    # refused before anything changed: no run.json rewritten, no log or event appended
    after = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()}
    assert {k: v for k, v in after.items() if k != ".lock"} == before


def test_a_finished_run_with_a_damaged_run_json_is_not_retrained(make_preset, tmp_path):
    from cli_helpers import assert_user_error, n2n_in_process

    p = make_preset(train__steps=2, train__val_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    assert train_worker(run_dir) == "finished"
    (run_dir / "run.json").write_text("{ damaged")
    final = run_dir / "snapshots" / "final.safetensors"
    mtime = final.stat().st_mtime_ns
    assert_user_error(n2n_in_process("resume", run_dir), "already finished")
    assert final.stat().st_mtime_ns == mtime
    assert (run_dir / "run.json").read_text() == "{ damaged"


# ---------------------------------------------------------------------------
# a full disk at any write, a stop whose snapshot is lost, resume, orphans


def _full_after(monkeypatch, cls, method: str, file_attr: str, n: int) -> None:
    """From the ``n``-th call of ``cls.method`` on, its file is /dev/full: writes fail with ENOSPC."""
    real = getattr(cls, method)
    calls = []

    def wrapped(self, *a, **k):
        calls.append(1)
        if len(calls) == n:
            setattr(self, file_attr, open("/dev/full", "a", encoding="utf-8"))  # noqa: SIM115
        return real(self, *a, **k)

    monkeypatch.setattr(cls, method, wrapped)


def _tiny_run(make_preset, tmp_path):
    p = make_preset(train__steps=8, train__snapshot_every=2, train__val_every=0, train__log_every=1)
    return prepare_run(load_preset(p), tmp_path / "res", None, ["test"])


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("where", ["metrics", "log"])
def test_disk_full_while_logging_fails_the_run_and_keeps_snapshots(
    where, make_preset, tmp_path, monkeypatch
):
    from n2n_core.engine.console import RunConsole
    from n2n_core.runs.writer import MetricsWriter

    run_dir = _tiny_run(make_preset, tmp_path)
    if where == "metrics":
        _full_after(monkeypatch, MetricsWriter, "write", "_f", 7)  # the train record of step 5
    else:
        # log lines: cpu threads, started, the crop-32 note, step 1, step 2 (fills the disk)
        _full_after(monkeypatch, RunConsole, "log_only", "_log", 5)
    assert train_worker(run_dir) == "failed"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["exit_code"] == 1
    assert "No space left on device" in info["reason"], info
    snaps = sorted((run_dir / "snapshots").glob("snapshot-*.safetensors"))
    assert snaps, "the snapshots written before the disk filled are kept"
    read_snapshot(snaps[-1])
    assert not (run_dir / "snapshots" / "final.safetensors").exists()
    assert not list(run_dir.rglob(".*.tmp-*"))


def test_disk_full_writing_samples_fails_the_run(make_preset, tmp_path, monkeypatch):
    import n2n_core.files.atomic as atomic
    from n2n_core.errors import UserError

    p = make_preset(train__steps=4, train__val_every=2, train__snapshot_every=2)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    real = atomic.atomic_write_bytes

    def write(path, data):
        if path.parent.name == "samples":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(atomic, "atomic_write_bytes", write)
    with pytest.raises(UserError, match="No space left"):
        train_worker(run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "No space left" in info["reason"]


def test_run_json_is_rewritten_in_place_when_the_disk_is_full(tmp_path, monkeypatch):
    import n2n_core.runs.info as runinfo

    runinfo.update_run_info(tmp_path, status="running", pid=1, name="x" * 200)

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runinfo, "atomic_write_text", full)
    runinfo.update_run_info(tmp_path, status="failed", reason="disk full")
    info = runinfo.read_run_info(tmp_path)
    assert info.status == "failed" and info.reason == "disk full" and info.name == "x" * 200


def test_stop_whose_snapshot_cannot_be_written_is_a_failure(make_preset, tmp_path, monkeypatch):
    import os
    import signal

    import n2n_core.engine.snapshots as snapshots

    run_dir = _tiny_run(make_preset, tmp_path)
    real_loss, real_write = ImageTask.loss, snapshots.atomic_write_bytes

    def loss(self, pred, target, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(self, pred, target, step)

    def write(path, data):
        if "00000003" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(ImageTask, "loss", loss)
    monkeypatch.setattr(snapshots, "atomic_write_bytes", write)
    assert train_worker(run_dir) == "failed"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["exit_code"] != 0
    assert "stopped by SIGTERM at step 3" in info["reason"]
    assert "No space left on device" in info["reason"]


@pytest.mark.parametrize(
    "case, needle",
    [
        ("snapshot-every-0", "train.snapshot_every is 0"),
        ("before-first", "before its first snapshot (train.snapshot_every: 50)"),
        ("all-damaged", "2 damaged"),
    ],
)
def test_resume_error_states_the_real_reason(case, needle, make_preset, tmp_path):
    from n2n_core.errors import UserError

    every = {"snapshot-every-0": 0, "before-first": 50, "all-damaged": 2}[case]
    p = make_preset(train__steps=4, train__snapshot_every=every, train__val_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    if case == "all-damaged":
        (run_dir / "snapshots").mkdir()
        for step in (2, 4):
            (run_dir / "snapshots" / f"snapshot-{step:08d}.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(UserError) as e:
        train_worker(run_dir, resume=True)
    assert needle in str(e.value) and "snapshot_every was 0" not in str(e.value), str(e.value)


def test_orphan_temp_files_of_dead_writers_are_removed(make_preset, tmp_path):
    import subprocess
    import sys

    p = make_preset(train__steps=2, train__snapshot_every=0, train__val_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / "snapshots").mkdir()
        orphans = [
            run_dir / "snapshots" / f".snapshot-00000002.safetensors.tmp-{dead.pid}",
            run_dir / f".run.json.tmp-{dead.pid}",
        ]
        kept = [
            run_dir / "snapshots" / f".snapshot-00000004.safetensors.tmp-{alive.pid}",
            run_dir / "snapshots" / ".notes.tmp-abc",
            run_dir / "snapshots" / "user-file.tmp-1",
        ]
        for f in orphans + kept:
            f.write_bytes(b"half")
        assert train_worker(run_dir) == "finished"
        assert not any(f.exists() for f in orphans)
        assert all(f.exists() for f in kept)
    finally:
        alive.kill()
        alive.wait()


def test_one_process_stops_after_the_step_under_way(make_preset, tmp_path, monkeypatch):
    """Not at its next log step, which can be minutes away: a stop's grace is short."""
    from n2n_core.process.signals import StopFlag

    p = make_preset(train__steps=50, train__log_every=40, train__val_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    stop = StopFlag()
    real = ImageTask.loss

    def loss(self, pred, target, step):
        if step == 6:  # SIGTERM arrives during step 7 (0-based 6)
            stop.requested, stop.signal_name = True, "SIGTERM"
        return real(self, pred, target, step)

    monkeypatch.setattr(ImageTask, "loss", loss)
    assert train_worker(run_dir, stop=stop) == "stopped"
    assert any("stopped by SIGTERM at step 7" in e["msg"] for e in _events(run_dir))
    read_snapshot(run_dir / "snapshots" / "snapshot-00000007.safetensors")
