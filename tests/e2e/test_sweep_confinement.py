"""A sweep acts only on its own points: the folder sweep.json names as a point's run must
be a plain run-folder name, a real folder (no symlink) inside the sweep's results folder,
whose run.json names this sweep and these params. Anything else is refused before it is
read, written, run or signalled (resume, cancel, the Slurm backend), and shown
``refused`` by status. The sweep's own folders (points/, .devices/) are never followed
through a symlink."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, n2n
from helpers.sweep_safety import LiveRun, edit_sweep, make_sweep, run_json, tree

from n2n_core.errors import UserError
from n2n_core.runs.info import update_run_info
from n2n_core.sweeps.local import point_command
from n2n_core.sweeps.slurm import PointJob
from n2n_core.sweeps.store import check_points, point_dir, point_problem, read_sweep


@pytest.fixture
def sweep(make_preset, tmp_path) -> Path:
    """A one-point sweep in tmp/res, its point queued (nothing trained)."""
    return make_sweep(make_preset(), tmp_path / "res")


@pytest.fixture
def victim(make_preset, tmp_path) -> Path:
    """Somebody else's queued run, in another results folder: `resume` would train it."""
    other = make_sweep(make_preset(), tmp_path / "other", name="victim")
    return other.parent.parent / read_sweep(other).points[0].run


def _set_run(sweep_dir: Path, run: object, **more) -> None:
    def change(d: dict) -> None:
        d["points"][0]["run"] = run
        d["points"][0].update(more)

    edit_sweep(sweep_dir, change)


def _problem(sweep_dir: Path) -> str | None:
    return point_problem(sweep_dir, read_sweep(sweep_dir).points[0])


# ---------------------------------------------------------------------------
# the check itself


@pytest.mark.parametrize(
    "run",
    [
        "/etc",
        "/tmp/00000-x",
        "../../other/00000-victim",
        "00000-x/../../..",
        "00000-a/b",
        "..",
        ".",
        "",
        "victim",
        "00000-x\n",
        "00000-x\x00",
    ],
)
def test_a_point_run_that_is_not_a_plain_run_folder_name_is_refused(sweep, run):
    _set_run(sweep, run)
    why = _problem(sweep)
    assert why is not None and "not the name of a run folder" in why
    with pytest.raises(UserError, match="point 0: run .* refusing to touch it"):
        point_dir(sweep, read_sweep(sweep).points[0])


def test_the_points_own_folder_passes_and_a_missing_one_has_nothing_to_touch(sweep):
    assert _problem(sweep) is None
    point = read_sweep(sweep).points[0]
    assert point_dir(sweep, point) == sweep.parent.parent / point.run
    _set_run(sweep, "00042-never-made")
    assert _problem(sweep) is None  # nothing there: nothing of anyone's to touch


def test_a_symlink_where_the_point_is_is_refused_even_to_a_folder_naming_the_sweep(sweep, victim):
    point = read_sweep(sweep).points[0]
    # The link's target even says it is this very point: still not followed.
    update_run_info(victim, sweep=f"sweeps/{sweep.name}", params=point.params)
    (sweep.parent.parent / "00007-link").symlink_to(victim)
    _set_run(sweep, "00007-link")
    assert "is a symlink" in _problem(sweep)


def test_a_folder_of_another_sweep_or_of_none_or_with_other_params_is_refused(make_preset, sweep):
    res = sweep.parent.parent
    other = make_sweep(make_preset(), res, name="other")
    other_run = read_sweep(other).points[0].run
    _set_run(sweep, other_run)
    assert f'belongs to sweep "sweeps/{other.name}", not sweeps/{sweep.name}' in _problem(sweep)
    # A run of nobody's sweep, in the same results folder.
    plain = res / "00009-mine"
    plain.mkdir()
    update_run_info(plain, status="finished", name="mine")
    _set_run(sweep, plain.name)
    assert "belongs to no sweep" in _problem(sweep)
    (plain / "run.json").unlink()
    assert "no readable run.json" in _problem(sweep)
    # This sweep's folder, but another point's params.
    update_run_info(plain, sweep=f"sweeps/{sweep.name}", params={"train.lr": 0.5})
    assert "ran other params" in _problem(sweep)


def test_check_points_names_the_first_refused_point_in_one_line(make_preset, tmp_path):
    sweep = make_sweep(make_preset(), tmp_path / "res", grid=("train.lr=1e-3,2e-3,3e-3",))

    def change(d: dict) -> None:
        d["points"][1]["run"] = "/etc"
        d["points"][2]["run"] = "../x"

    edit_sweep(sweep, change)
    with pytest.raises(UserError) as e:
        check_points(sweep, read_sweep(sweep))
    assert "point 1:" in str(e.value) and "(and 1 more points)" in str(e.value)
    assert len(e.value.problems) == 1


# ---------------------------------------------------------------------------
# resume, cancel, status through the CLI


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_resume_never_trains_a_run_folder_outside_the_sweep(sweep, victim, how):
    run = str(victim) if how == "absolute" else os.path.relpath(victim, sweep.parent.parent)
    _set_run(sweep, run)
    before = tree(victim.parent)
    r = n2n("sweep", "resume", sweep, timeout=120)
    assert_user_error(r, "point 0", "refusing to touch it")
    assert tree(victim.parent) == before  # not trained, no log written beside it
    assert run_json(victim)["status"] == "queued"
    assert not (victim.parent / f"{victim.name}.log").exists()
    assert json.loads((sweep / "sweep.json").read_text())["status"] == "pending"


def test_cancel_never_signals_a_live_run_the_sweep_names_elsewhere(sweep, victim):
    with LiveRun(victim) as live:
        _set_run(sweep, str(victim), status="running")
        edit_sweep(sweep, lambda d: d.update(status="running"))
        r = n2n("sweep", "cancel", sweep, timeout=120)
        assert_user_error(r, "point 0", "refusing to touch it")
        assert live.alive()


def test_cancel_never_signals_a_live_run_of_nobodys_sweep_in_the_same_results(sweep):
    mine = sweep.parent.parent / "00009-mine"
    mine.mkdir()
    update_run_info(mine, status="queued", name="mine")
    with LiveRun(mine) as live:
        _set_run(sweep, mine.name, status="running")
        edit_sweep(sweep, lambda d: d.update(status="running"))
        r = n2n("sweep", "cancel", sweep, timeout=120)
        assert_user_error(r, "point 0", "belongs to no sweep")
        assert live.alive()
        assert run_json(mine)["status"] == "running"


def test_status_shows_a_foreign_point_as_refused_without_reading_it(sweep, victim):
    _set_run(sweep, str(victim))
    r = n2n("sweep", "status", sweep, "--json")
    assert r.code == 0, r.err
    (point,) = json.loads(r.out)["points"]
    assert point["status"] == "refused" and point["run_dir"] is None
    assert "not the name of a run folder" in point["refused"]
    assert point["total_steps"] is None  # the victim's run.json says 6: never read
    r = n2n("sweep", "status", sweep)
    assert r.code == 0, r.err
    assert "refused" in r.out and "point 0: refused:" in r.out


def test_a_symlink_where_the_points_logs_go_is_refused(sweep, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (sweep / "points").rmdir()
    (sweep / "points").symlink_to(elsewhere)
    r = n2n("sweep", "resume", sweep, timeout=120)
    assert_user_error(r, "points", "symlink")
    assert list(elsewhere.iterdir()) == []
    point = read_sweep(sweep).points[0]
    assert run_json(sweep.parent.parent / point.run)["status"] == "queued"  # never started


def test_a_symlink_where_the_device_locks_go_is_refused(sweep, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (sweep.parent / ".devices").symlink_to(elsewhere)
    r = n2n("sweep", "resume", sweep, timeout=120)
    assert_user_error(r, ".devices", "symlink")
    assert list(elsewhere.iterdir()) == []
    assert json.loads((sweep / "sweep.json").read_text())["status"] == "pending"


# ---------------------------------------------------------------------------
# command lines built from what a file says


def test_point_commands_never_take_a_path_for_an_option():
    assert point_command(Path("-rf/00000-x"))[-2:] == ["--", "-rf/00000-x"]
    job = PointJob("-rf/00000-x", nodes=1)
    assert Path(job.run_dir).is_absolute()
    assert job.command(0, "node0")[-1] == job.run_dir
