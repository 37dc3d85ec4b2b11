"""The run list's index: its cost does not grow with runs that cannot change, and it
still sees every change.

A scan of unchanged runs publishes nothing (same row objects, ``changed`` False);
ended runs stop being followed and are only stat'ed a slice at a time, yet an
evaluation appended to one, a new run and a deleted one all show; a large first
read publishes the newest runs first; a second open takes ended runs from the
summary cache without reading their records.
"""

from __future__ import annotations

import json
import os
import shutil

from helpers.fake_runs import finished_runs

import n2n_tui.models.runindex as runindex
from n2n_core.runs.records import EvalRecord, TrainRecord
from n2n_tui.models.runindex import RunIndex


def scan_until(index: RunIndex, done, scans: int = 200):
    for _ in range(scans):
        rows = index.scan()
        if done(rows):
            return rows
    raise AssertionError("never happened")


def test_an_idle_scan_changes_nothing_and_keeps_its_rows(tmp_path):
    finished_runs(tmp_path, 30, 20)
    index = RunIndex(tmp_path)
    first = index.scan()
    assert len(first) == 30 and index.changed
    again = index.scan()
    assert not index.changed
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_cold_runs_still_show_every_change(tmp_path, monkeypatch):
    monkeypatch.setattr(runindex, "HOT_S", 0.0)
    finished_runs(tmp_path, 40, 20)
    index = RunIndex(tmp_path)
    index.scan()
    index.scan()  # past HOT_S: every ended run is cold now, no follower left
    assert all(t.follower is None for t in index._runs.values())
    run = sorted(tmp_path.glob("0*"))[7]
    with open(run / "metrics.jsonl", "a") as f:
        f.write(
            EvalRecord(
                step=1900,
                snapshot="final.safetensors",
                dataset="kodak",
                noise="gaussian",
                level=25.0,
                psnr=33.3,
            ).to_line()
        )
    rows = scan_until(
        index, lambda rows: rows[7].eval_psnr == 33.3, scans=runindex.COLD_ROUND_S + 1
    )
    assert index.changed or rows[7].eval_psnr == 33.3
    # A new run and a deleted one show at the next scan (the folder changed).
    finished_runs(tmp_path / "more", 1, 10)
    os.rename(next((tmp_path / "more").glob("0*")), tmp_path / "00100-new")
    shutil.rmtree(sorted(tmp_path.glob("0*"))[0])
    names = [r.path.name for r in index.scan()]
    assert "00100-new" in names and "00000-bench-0" not in names


def test_a_run_resumed_elsewhere_is_followed_again(tmp_path, monkeypatch):
    monkeypatch.setattr(runindex, "HOT_S", 0.0)
    finished_runs(tmp_path, 3, 10)
    index = RunIndex(tmp_path)
    index.scan()
    index.scan()
    run = sorted(tmp_path.glob("0*"))[2]
    info = json.loads((run / "run.json").read_text())
    info.update(status="running", pid=os.getpid())
    (run / "run.json").write_text(json.dumps(info))
    rows = scan_until(index, lambda rows: rows[2].status == "running")
    with open(run / "metrics.jsonl", "a") as f:
        f.write(TrainRecord(step=5000, time=2e9, loss=0.1, lr=1e-4, ms_per_step=30.0).to_line())
    rows = index.scan()  # a running run is polled every scan
    assert rows[2].step == 5000


def test_a_large_first_read_shows_the_newest_runs_first(tmp_path, monkeypatch):
    monkeypatch.setattr(runindex, "SCAN_BUDGET_S", 0.0)
    finished_runs(tmp_path, 20, 10)
    index = RunIndex(tmp_path, cache=False)
    rows = index.scan()
    assert 0 < len(rows) < 20 and index.pending and index.unread == 20 - len(rows)
    assert rows[-1].path.name.startswith("00019")
    rows = scan_until(index, lambda rows: not index.unread)
    assert [r.run_id for r in rows] == list(range(20))


def test_a_second_open_reads_no_records_of_ended_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(runindex, "HOT_S", 0.0)
    monkeypatch.setattr(runindex, "SAVE_S", 0.0)
    finished_runs(tmp_path, 25, 20)
    first = RunIndex(tmp_path)
    want = [r.to_json() for r in first.scan()]
    first.scan()  # cooled and saved
    calls = []
    real = runindex.RunFollower

    def counting(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(runindex, "RunFollower", counting)
    second = RunIndex(tmp_path)
    assert [r.to_json() for r in second.scan()] == want
    assert calls == []


def test_a_replay_at_speed_zero_reads_in_chunks_to_the_files_final_state(tmp_path):
    # The whole file fed chunk by chunk into a new state, swapped in at the end: the same
    # values as one typed read, a last line without its newline counted.
    from n2n_core.runs.state import run_state
    from n2n_tui.models.follow import RunFollower
    from n2n_tui.models.replay import ReplayPlayer

    finished_runs(tmp_path, 1, 3000)
    run = next(tmp_path.glob("0*"))
    metrics = run / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes().rstrip(b"\n"))
    feed = RunFollower(run, chunk=4096)
    seen = []
    real = feed.state
    ReplayPlayer(feed, speed=0)._load_all()
    seen.append(feed.state is real)
    want = run_state(run, capacity=2048)
    assert seen == [False]  # a new state, swapped in whole
    assert repr(feed.copy_values()) == repr(want.copy_values())
    assert feed.state.series["loss"].points() == want.series["loss"].points()
