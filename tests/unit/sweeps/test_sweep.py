"""Sweeps: grid checks, device slots, the Slurm job script; the sweeps themselves run in
tests/e2e/test_sweep_runs.py."""

from __future__ import annotations

import os

import pytest
from cli_helpers import assert_user_error, n2n_in_process

from n2n_core.errors import UserError
from n2n_core.sweeps.local import DeviceClaim, Slot, parse_devices, plan_slots
from n2n_core.sweeps.plan import parse_grid, plan_sweep, split_values

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
    r = n2n_in_process(
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
    r = n2n_in_process("sweep", make_preset(), "--grid", "train.lr=0.1", "--slots", "64")
    assert_user_error(r, "--slots 64: more slots than CPU cores")


# ---------------------------------------------------------------------------
# Slurm


def test_slurm_keys_become_sbatch_options(monkeypatch, tmp_path):
    submitit = pytest.importorskip("submitit")
    from n2n_core.config.schema import validate_preset
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
