"""Deleting a run folder (the TUI's delete) only when nothing writes it: the run's lock
is taken (a live owner is named), run.json is read again under it, a point of a sweep
whose scheduler lives is refused; the reason is one UserError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.sweep_safety import LIVE_SCHEDULER, LiveRun, make_sweep, tree

from n2n_core.errors import UserError
from n2n_core.process.locks import is_held
from n2n_core.runs.folders import delete_run, sweep_dir_of
from n2n_core.runs.info import read_run_info, update_run_info
from n2n_core.sweeps.store import read_sweep


def _run(results: Path, name: str = "00000-r", **info) -> Path:
    run = results / name
    run.mkdir(parents=True)
    update_run_info(run, **{"status": "finished", "name": "r", **info})
    (run / "metrics.jsonl").write_text("{}\n")
    return run


def test_a_finished_run_is_deleted(tmp_path):
    run = _run(tmp_path)
    delete_run(run)
    assert not run.exists()


def test_a_run_whose_lock_is_held_is_refused_naming_the_holder(tmp_path):
    run = _run(tmp_path)
    with LiveRun(run, record=False) as live:  # starting elsewhere: run.json not yet updated
        with pytest.raises(
            UserError, match=rf"in use by another n2n-core process \(pid {live.proc.pid}\)"
        ):
            delete_run(run)
        assert (run / "metrics.jsonl").exists() and live.alive()


def test_run_json_is_read_again_under_the_lock(tmp_path):
    """A run another host trains: the lock here proves nothing, run.json says running."""
    run = _run(tmp_path, status="running", host="gpu-node-07", pid=4242)
    with pytest.raises(UserError, match="still running on gpu-node-07"):
        delete_run(run)
    assert run.exists()
    assert is_held(run) is False  # the lock was let go


def test_an_interrupted_run_is_deleted(tmp_path):
    import socket

    run = _run(tmp_path, status="running", host=socket.gethostname(), pid=None)
    delete_run(run)
    assert not run.exists()


def test_a_queued_point_of_a_live_sweep_is_refused_until_its_scheduler_is_gone(
    make_preset, tmp_path
):
    res = tmp_path / "res"
    sweep = make_sweep(make_preset(), res)
    point = res / read_sweep(sweep).points[0].run
    assert read_run_info(point).status == "queued"
    before = tree(point)
    with LiveRun(sweep, script=LIVE_SCHEDULER):
        with pytest.raises(UserError, match="whose scheduler is running; cancel the sweep"):
            delete_run(point)
        after = tree(point)
        after.pop(".lock")  # ours while we looked: the kernel let go of it
        assert after == before
    delete_run(point)
    assert not point.exists()


def test_a_symlinked_or_misnamed_folder_is_refused(tmp_path):
    target = _run(tmp_path / "elsewhere")
    res = tmp_path / "res"
    res.mkdir()
    (res / "00001-link").symlink_to(target)
    with pytest.raises(UserError, match="is a symlink"):
        delete_run(res / "00001-link")
    assert (target / "run.json").exists()
    with pytest.raises(UserError, match="not a run folder"):
        delete_run(tmp_path / "elsewhere")


@pytest.mark.parametrize("ref", ["../../etc", "/tmp/sweeps/x", "sweeps/../x", "sweeps/a/b", 5])
def test_a_sweep_reference_that_leads_elsewhere_is_never_followed(tmp_path, ref):
    run = _run(tmp_path)
    raw = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**raw, "sweep": ref}))
    assert sweep_dir_of(run, read_run_info(run)) is None


def test_a_good_sweep_reference_is_beside_the_run(tmp_path):
    run = _run(tmp_path, sweep="sweeps/00003-lr")
    assert sweep_dir_of(run, read_run_info(run)) == tmp_path / "sweeps" / "00003-lr"
