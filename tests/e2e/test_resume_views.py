"""A resumed run looks the same in every view: run index, dashboard, replay, `runs --json`."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from n2n_core.cli.main import main
from n2n_core.runs.info import update_run_info
from n2n_core.runs.records import EventRecord, ValRecord, read_metrics
from n2n_tui.models.follow import RunFollower
from n2n_tui.models.replay import ReplayPlayer
from n2n_tui.models.runindex import RunIndex


def _follow(follower: RunFollower) -> None:
    while follower.poll().more:
        pass


@pytest.mark.slow
def test_killed_after_snapshot_then_resumed_shows_the_same_everywhere(
    make_preset, tmp_path, capsys
):
    preset = make_preset(
        train__steps=80, train__batch=1, train__val_every=10, train__snapshot_every=50
    )
    results = tmp_path / "res"
    assert main(["run", str(preset), "--results-dir", str(results)]) == 0
    (run,) = results.iterdir()
    metrics = run / "metrics.jsonl"

    # Leave the folder as a SIGKILL after the snapshot at step 50 does: records to step
    # 80, no final snapshot or "finished" event, run.json still "running" for a process
    # that is gone. The
    # validations past 50 belong to the lost attempt; a best PSNR that no resumed
    # validation can reach shows whether a view still holds them.
    (run / "snapshots" / "final.safetensors").unlink()
    lines = []
    for rec in read_metrics(metrics):
        if isinstance(rec, ValRecord) and rec.step > 50:
            rec = dataclasses.replace(rec, psnr=99.0)
        if not (isinstance(rec, EventRecord) and rec.msg.startswith("finished")):
            lines.append(rec.to_line())
    metrics.write_text("".join(lines))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    update_run_info(run, status="running", pid=int(gone.stdout), ended=None, exit_code=None)

    index = RunIndex(results)
    feed = follower = RunFollower(run)
    (row,) = index.scan()
    _follow(follower)
    assert row.status == "interrupted" and row.step == 80 and row.best_psnr == 99.0
    assert feed.values.best_psnr == 99.0
    size_before = metrics.stat().st_size

    capsys.readouterr()
    assert main(["resume", str(run)]) == 0
    # The rewritten file has grown past the old offset: a size check alone misses it.
    assert metrics.stat().st_size > size_before

    (row,) = index.scan()
    _follow(follower)
    replayed = RunFollower(run)
    ReplayPlayer(replayed, speed=0).run(cancelled=lambda: True)
    capsys.readouterr()
    assert main(["runs", "--results-dir", str(results), "--json"]) == 0
    (cli,) = json.loads(capsys.readouterr().out)["runs"]

    v = feed.copy_values()
    assert cli["status"] == row.status == "finished"
    assert cli["step"] == row.step == v.step == replayed.values.step == 80
    assert cli["best_psnr"] == round(row.best_psnr, 2) == round(v.best_psnr, 2)
    assert v.best_psnr == replayed.values.best_psnr < 99.0
    for f in (feed, replayed):
        for name in ("loss", "psnr"):
            xs, _ = f.state.series[name].points()
            assert xs == sorted(set(xs)), f"{name}: a step shown twice: {xs}"
    assert feed.state.series["psnr"].points() == replayed.state.series["psnr"].points()
    assert feed.state.series["psnr"].points()[0] == [10, 20, 30, 40, 50, 60, 70, 80]
    # The log's last word says both clocks: training over both sessions, wall since the start.
    log = (run / "log.txt").read_text()
    assert re.search(
        r"finished 80 steps in \d+:\d\d this session; \d+:\d\d of training over 2 sessions, "
        r"\d+:\d\d wall time since the run started",
        log,
    ), log[-600:]
    (last,) = [e for e in v.events if e.msg.startswith("finished in")]
    assert "of training over 2 sessions" in last.msg
