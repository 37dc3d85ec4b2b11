"""sweep.json's types are checked once, when it is read: a wrong-typed key is one
``error:`` line naming the file and the key (exit 2) for status, resume and cancel,
never an internal error (nor one after a point's child has run). Unknown keys are
still kept. Job ids are Slurm's shape only and reach scancel after ``--``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, n2n_in_process
from helpers.sweep_safety import edit_sweep, make_sweep, run_json

from n2n_core.errors import UserError
from n2n_core.sweeps.store import read_sweep, write_sweep


@pytest.fixture
def sweep(make_preset, tmp_path) -> Path:
    return make_sweep(make_preset(), tmp_path / "res", grid=("train.lr=1e-3,2e-3",))


def _point(key, value):
    return lambda d: d["points"][0].__setitem__(key, value)


def _top(key, value):
    return lambda d: d.__setitem__(key, value)


def _drop(key):
    return lambda d: d.pop(key)


# (what is changed, the key the error names)
BAD = {
    "run is a number": (_point("run", 5), "points[0].run"),
    "run is a list": (_point("run", ["00000-s-p0"]), "points[0].run"),
    "params is a list": (_point("params", ["train.lr"]), "points[0].params"),
    "params is a string": (_point("params", "train.lr=1"), "points[0].params"),
    "index is a string": (_point("index", "0"), "points[0].index"),
    "index is a bool": (_point("index", False), "points[0].index"),
    "index out of order": (_point("index", 1), "points[0].index"),
    "index far out": (_point("index", 99), "points[0].index"),
    "point status unknown": (_point("status", "exploded"), "points[0].status"),
    "point status a number": (_point("status", 3), "points[0].status"),
    "devices a string": (_point("devices", "0,1"), "points[0].devices"),
    "job_state a number": (_point("job_state", 7), "points[0].job_state"),
    "started a string": (_point("started", "yesterday"), "points[0].started"),
    "ended NaN": (_point("ended", float("nan")), "points[0].ended"),
    "exit_code a float": (_point("exit_code", 1.5), "points[0].exit_code"),
    "point not an object": (lambda d: d["points"].__setitem__(0, 5), "points[0]"),
    "two points, one run": (
        lambda d: d["points"][1].__setitem__("run", d["points"][0]["run"]),
        "points[1].run",
    ),
    "point run missing": (lambda d: d["points"][0].pop("run"), "points[0].run: missing"),
    "slots a string": (_top("slots", "2"), "slots"),
    "slots zero": (_top("slots", 0), "slots"),
    "executor unknown": (_top("executor", "k8s"), "executor"),
    "executor a list": (_top("executor", ["local"]), "executor"),
    "grid a list": (_top("grid", ["train.lr"]), "grid"),
    "grid values not lists": (_top("grid", {"train.lr": 0.1}), "grid"),
    "status a number": (_top("status", 1), "status"),
    "status unknown": (_top("status", "hacked"), "status"),
    "points an object": (_top("points", {"0": {}}), "points"),
    "points missing": (_drop("points"), "points: missing"),
    "seeds a string": (_top("seeds", "1"), "seeds"),
    "sets a string": (_top("sets", "train.lr=1"), "sets"),
    "message a number": (_top("message", 5), "message"),
    "scheduler a list": (_top("scheduler", [1]), "scheduler"),
    "created a string": (_top("created", "now"), "created"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_wrong_typed_key_is_one_user_error_naming_file_and_key(sweep, case):
    change, key = BAD[case]
    edit_sweep(sweep, change)
    with pytest.raises(UserError) as e:
        read_sweep(sweep)
    assert len(e.value.problems) == 1
    assert str(e.value).startswith(f"{sweep / 'sweep.json'}: {key}"), str(e.value)


@pytest.mark.parametrize(
    "case", ["run is a number", "index far out", "slots a string", "points an object"]
)
def test_status_resume_and_cancel_say_it_in_one_line(sweep, case):
    change, key = BAD[case]
    edit_sweep(sweep, change)
    for verb in ("status", "resume", "cancel"):
        assert_user_error(n2n_in_process("sweep", verb, sweep, timeout=120), "sweep.json", key)
    # Nothing ran: both points are still queued.
    for run in sorted(p for p in sweep.parent.parent.iterdir() if p.name != "sweeps"):
        assert run_json(run)["status"] == "queued"
        assert not (run / "metrics.jsonl").exists()


def test_unknown_keys_are_still_kept_and_checked_ones_pass(sweep):
    def change(d: dict) -> None:
        d["search"] = {"sampler": "tpe"}
        d["points"][0]["queue"] = [1, 2]
        d["points"][0].update(job_id="12345_7", job_state="RUNNING", started=1.5, exit_code=None)

    edit_sweep(sweep, change)
    s = read_sweep(sweep)
    assert s.points[0].job_id == "12345_7"
    write_sweep(sweep, s)
    again = json.loads((sweep / "sweep.json").read_text())
    assert again["search"] == {"sampler": "tpe"} and again["points"][0]["queue"] == [1, 2]


# ---------------------------------------------------------------------------
# job ids


@pytest.mark.parametrize(
    "job_id", ["--user=root", "-u", "123 456", "123;id", "12345\n", "1_2_3", "", "0x10", 12345]
)
def test_a_job_id_not_of_slurms_shape_is_refused_where_it_is_read(sweep, job_id):
    edit_sweep(sweep, _point("job_id", job_id))
    with pytest.raises(UserError, match=r"points\[0\]\.job_id"):
        read_sweep(sweep)


def _fake_scancel(tmp_path: Path) -> tuple[dict, Path]:
    """A scancel on PATH that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "scancel.args"
    script = bin_dir / "scancel"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {record}\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, record


def _slurm_sweep_running(sweep: Path, job_id: str) -> None:
    def change(d: dict) -> None:
        d.update(executor="slurm", status="running", scheduler={"cluster": "slurm", "pid": 1})
        d["points"][0].update(status="running", job_id=job_id, job_state="RUNNING")

    edit_sweep(sweep, change)


def test_slurm_cancel_passes_a_job_id_after_double_dash(sweep, tmp_path):
    pytest.importorskip("submitit")
    env, record = _fake_scancel(tmp_path)
    _slurm_sweep_running(sweep, "12345")
    r = n2n_in_process("sweep", "cancel", sweep, env=env, timeout=120)
    assert r.code == 0, (r.out, r.err)
    assert record.read_text().splitlines() == ["--", "12345"]


def test_slurm_cancel_of_an_option_shaped_job_id_runs_nothing(sweep, tmp_path):
    pytest.importorskip("submitit")
    env, record = _fake_scancel(tmp_path)
    _slurm_sweep_running(sweep, "12345")
    edit_sweep(sweep, _point("job_id", "--user=root"))
    for verb in ("cancel", "status", "resume"):
        r = n2n_in_process("sweep", verb, sweep, env=env, timeout=120)
        assert_user_error(r, "points[0].job_id", "Slurm job id")
    assert not record.exists()
