"""Sweeps: grid checks, device slots, and tiny CPU sweeps through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, n2n

from n2n_core.errors import UserError
from n2n_core.sweeps.local import DeviceClaim, Slot, parse_devices, plan_slots
from n2n_core.sweeps.store import parse_grid, plan_sweep, split_values, sweep_view

EIGHT = [str(i) for i in range(8)]


# ---------------------------------------------------------------------------
# device slots (pure)


def test_eight_devices_two_slots_of_four():
    slots = plan_slots("cuda", EIGHT, nproc=4)
    assert [s.devices for s in slots] == [("0", "1", "2", "3"), ("4", "5", "6", "7")]
    assert [s.env() for s in slots] == [
        {"CUDA_VISIBLE_DEVICES": "0,1,2,3"},
        {"CUDA_VISIBLE_DEVICES": "4,5,6,7"},
    ]


def test_eight_devices_eight_slots_of_one_on_npu():
    slots = plan_slots("npu", EIGHT, nproc=1)
    assert [s.devices for s in slots] == [(d,) for d in EIGHT]
    assert slots[5].env() == {"ASCEND_RT_VISIBLE_DEVICES": "5"}
    assert len({s.devices for s in slots}) == 8  # no device handed out twice


def test_device_list_and_slot_limits():
    slots = plan_slots("cuda", EIGHT, nproc=2, slots=2, requested=["6", "7", "2", "3"])
    assert [s.devices for s in slots] == [("6", "7"), ("2", "3")]
    with pytest.raises(UserError, match="more slots than devices"):
        plan_slots("cuda", EIGHT, nproc=4, slots=3)
    with pytest.raises(UserError, match="--devices: 9: no such cuda device"):
        plan_slots("cuda", EIGHT, nproc=1, requested=["1", "9"])
    with pytest.raises(UserError, match="runtime.nproc: 8 processes need 8"):
        plan_slots("cuda", EIGHT[:4], nproc=8)
    with pytest.raises(UserError, match="device is listed twice"):
        parse_devices("0,1,1")


def test_cpu_one_slot_by_default_and_cores_divided():
    assert plan_slots("cpu", [], nproc=1, cores=16) == [Slot(0, "cpu", (), 16)]
    slots = plan_slots("cpu", [], nproc=2, slots=2, cores=16)
    assert [s.env() for s in slots] == [{"OMP_NUM_THREADS": "4"}] * 2
    with pytest.raises(UserError, match="more slots than CPU cores"):
        plan_slots("cpu", [], nproc=1, slots=3, cores=2)
    with pytest.raises(UserError, match="no device list"):
        plan_slots("cpu", [], nproc=1, requested=["0"], cores=2)


def test_device_claims_keep_two_schedulers_off_one_device(tmp_path):
    a, b = plan_slots("cuda", EIGHT, nproc=4)
    first = DeviceClaim(tmp_path, a)
    assert first.acquire()
    assert not DeviceClaim(tmp_path, a).acquire()  # a second sweep waits for these four
    other = DeviceClaim(tmp_path, b)
    assert other.acquire()  # ... but not for the other four
    overlap = plan_slots("cuda", EIGHT, nproc=2)[1]  # devices 2,3: held by the first claim
    assert not DeviceClaim(tmp_path, overlap).acquire()
    first.release()
    assert DeviceClaim(tmp_path, overlap).acquire()
    other.release()


def test_device_lock_planted_as_a_symlink_or_fifo_is_refused(tmp_path):
    """A shared results dir: a lock path someone made a symlink (to a file of yours)
    or a FIFO is never followed, created through, or left holding a lock."""
    (slot,) = plan_slots("cuda", ["0"], nproc=1)
    locks = tmp_path / ".devices"
    locks.mkdir()
    victim = tmp_path / "victim.txt"
    (locks / "cuda0.lock").symlink_to(victim)
    with pytest.raises(UserError, match="cuda0.lock"):
        DeviceClaim(tmp_path, slot).acquire()
    assert not victim.exists()
    (locks / "cuda0.lock").unlink()
    os.mkfifo(locks / "cuda0.lock")
    with pytest.raises(UserError, match="not a regular file"):
        DeviceClaim(tmp_path, slot).acquire()


# ---------------------------------------------------------------------------
# the grid


def test_grid_values_split_outside_brackets():
    assert split_values("0.1, 0.2") == ["0.1", "0.2"]
    assert split_values("[0, 25],[0, 50]") == ["[0, 25]", "[0, 50]"]
    grid, _, problems = parse_grid(["noise.train_sigma=[0,25],[0,50]", "train.lr=1e-3,3e-4"])
    assert problems == []
    assert grid == {"noise.train_sigma": [[0, 25], [0, 50]], "train.lr": [0.001, 0.0003]}


def test_grid_problems_are_each_named(make_preset):
    preset = make_preset()
    with pytest.raises(UserError) as e:
        plan_sweep(
            preset,
            ["train.lr=0.1,,0.2", "train.crop=33,64,48", "train.lrr=1,2", "train.batch=2"],
            [],
            1,
        )
    assert e.value.problems == [
        "--grid 'train.lr=0.1,,0.2': empty value",
        "--grid train.crop=33: train.crop: must be a multiple of 32 (the U-Net pools five times)",
        "--grid train.crop=48: train.crop: must be a multiple of 32 (the U-Net pools five times)",
        "--grid train.lrr: train.lrr: unknown key (not a preset key)",
    ]
    with pytest.raises(UserError, match="--grid train.lr: key given twice"):
        plan_sweep(preset, ["train.lr=0.1", "train.lr=0.2"], [], 1)
    # A combination the preset model rejects names the point.
    with pytest.raises(UserError, match="point train.rampup=0.6 train.rampdown=0.5: train: rampup"):
        plan_sweep(preset, ["train.rampup=0.6,0.1", "train.rampdown=0.5,0.1"], [], 1)


def test_changing_a_noise_kind_points_to_a_section_grid(make_preset):
    with pytest.raises(UserError, match=r"--grid 'noise=\{type: gaussian\},\{type: poisson\}'"):
        plan_sweep(
            make_preset(noise={"type": "gaussian", "val_sigma": 25}),
            ["noise.type=gaussian,poisson"],
            [],
            1,
        )
    plan = plan_sweep(make_preset(), ["noise={type: gaussian},{type: poisson}"], [], 1)
    assert [p.noise.type for p in plan.presets] == ["gaussian", "poisson"]


def test_points_are_the_product_times_seeds(make_preset):
    plan = plan_sweep(make_preset(), ["train.lr=1e-3,2e-3", "noise.val_sigma=15,25"], [], 2)
    assert len(plan.presets) == 8
    assert plan.params[0] == {"train.lr": 0.001, "noise.val_sigma": 15, "train.seed": 0}
    assert plan.params[-1] == {"train.lr": 0.002, "noise.val_sigma": 25, "train.seed": 1}
    assert {p.train.seed for p in plan.presets} == {0, 1}


def test_cli_prints_one_error_line_per_problem(make_preset, tmp_path):
    r = n2n(
        "sweep",
        make_preset(),
        "--grid",
        "train.crop=33,47",
        "--grid",
        "data.samples=",
        "--results-dir",
        tmp_path / "res",
    )
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith("error: --grid ") for ln in lines), r.err
    assert not (tmp_path / "res").exists()  # nothing was created
    r = n2n("sweep", make_preset(), "--grid", "train.lr=0.1", "--slots", "64")
    assert_user_error(r, "--slots 64: more slots than CPU cores")


# ---------------------------------------------------------------------------
# tiny sweeps on the CPU (each point is a real `n2n-core resume` process)


def _cli_view(sweep_dir: Path) -> dict:
    r = n2n("sweep", "status", sweep_dir, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def _view(sweep_dir: Path) -> dict:
    return json.loads(json.dumps(sweep_view(sweep_dir)))  # as --json prints it


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
    listed = json.loads(n2n("runs", "--results-dir", res, "--json").out)["runs"]
    assert len(listed) == 4
    assert n2n("tag", res / points[0]["run"], "+best", "+paper").code == 0
    tagged = json.loads(n2n("runs", "--results-dir", res, "--tag", "best", "--json").out)
    assert [x["name"] for x in tagged["runs"]] == ["grid-p0"]
    assert tagged["runs"][0]["tags"] == ["best", "paper"]
    where = n2n("runs", "--results-dir", res, "--where", "noise.val_sigma=25", "--json")
    assert sorted(x["params"]["train.lr"] for x in json.loads(where.out)["runs"]) == [0.001, 0.002]
    r = n2n("sweep", "resume", sweep_dir)
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
        assert_user_error(n2n("sweep", "resume", sweep_dir), "already running")
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
    r = n2n("sweep", preset, "--grid", f"data.train={photo_dir},{missing}", "--results-dir", res)
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


def test_slurm_keys_become_sbatch_options(monkeypatch, tmp_path):
    submitit = pytest.importorskip("submitit")
    from n2n_core.config.preset import validate_preset
    from n2n_core.sweeps.slurm import PointJob, executor_parameters

    preset = validate_preset(
        {
            "name": "big",
            "train": {"steps": 10},
            "runtime": {"device": "cuda", "nproc": 8},
            "slurm": {"partition": "gpu", "nodes": 2, "account": "proj", "extra": {"qos": "high"}},
        }
    )
    # Render the job script as on a cluster (there is no srun here).
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    ex = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="slurm")
    ex.update_parameters(**executor_parameters(preset))
    script = ex._executor._make_submission_file_text("python -m job", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --account=proj",
        "#SBATCH --qos=high",
        "#SBATCH --time=1440",
    ):
        assert line in script, (line, script)
    # Each node runs torchrun with its rank; the job's first host is the rendezvous.
    cmd = PointJob("/shared/results/00007-big-p0", nodes=2).command(1, "node17")
    assert cmd[-8:] == ["resume", "/shared/results/00007-big-p0", "--nnodes", "2"] + [
        "--node-rank",
        "1",
        "--rdzv-endpoint",
        "node17:29400",
    ]


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
