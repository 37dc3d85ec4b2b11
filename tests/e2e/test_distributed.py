"""torchrun/DDP, fault tolerance (kill, stop, resume bit-identical), mixed precision on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from cli_helpers import n2n, n2n_in_process, wait_for
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.slow


def _final_weights(run_dir):
    t = load_file(run_dir / "snapshots" / "final.safetensors")
    return {k: v for k, v in t.items() if k.startswith("net.")}


def test_two_process_run_has_world_size_2_and_one_stream(make_preset, tmp_path):
    p = make_preset(
        train__steps=4,
        train__val_every=2,
        train__snapshot_every=0,
        train__log_every=1,
        runtime__sys_every=0.01,
    )
    r = n2n("run", p, "--nproc", "2", "--results-dir", tmp_path / "res")
    assert r.code == 0, r.err
    run_dir = tmp_path / "res" / "00000-tiny"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["world_size"] == 2 and info["status"] == "finished"
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2, 3, 4]  # rank 0 alone writes
    assert [r["step"] for r in recs if r["kind"] == "val"] == [2, 4]
    # Rank 1's system numbers reach rank 0's stream through the gather.
    sys_recs = [r for r in recs if r["kind"] == "sys"]
    assert sys_recs and all([x["rank"] for x in r["ranks"]] == [0, 1] for r in sys_recs)


def _ddp_step(rank: int, world: int, init_file: str, data_file: str, out_file: str) -> None:
    import torch.distributed as dist

    from n2n_core.engine.losses import compute_loss
    from n2n_core.engine.network import UNet
    from n2n_core.training.step import ADAM_BETAS, ADAM_EPS

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    data = load_file(data_file)
    b = data["x"].shape[0] // world
    torch.manual_seed(0)
    net = torch.nn.parallel.DistributedDataParallel(UNet(3))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=ADAM_BETAS, eps=ADAM_EPS)
    for _ in range(2):
        x, y = data["x"][rank * b : (rank + 1) * b], data["y"][rank * b : (rank + 1) * b]
        loss = compute_loss("l2", net(x), y, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if rank == 0:
        save_file({k: v.contiguous() for k, v in net.module.state_dict().items()}, out_file)
    dist.destroy_process_group()


def test_two_ranks_of_batch_b_equal_one_rank_of_batch_2b(tmp_path):
    from n2n_core.engine.losses import compute_loss
    from n2n_core.engine.network import UNet
    from n2n_core.training.step import ADAM_BETAS, ADAM_EPS

    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g) - 0.5
    y = x + 0.1 * torch.randn(4, 3, 32, 32, generator=g)
    save_file({"x": x, "y": y}, tmp_path / "data.safetensors")
    mp.spawn(
        _ddp_step,
        args=(
            2,
            str(tmp_path / "init"),
            str(tmp_path / "data.safetensors"),
            str(tmp_path / "ddp.safetensors"),
        ),
        nprocs=2,
        join=True,
    )
    torch.manual_seed(0)
    net = UNet(3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=ADAM_BETAS, eps=ADAM_EPS)
    for _ in range(2):
        loss = compute_loss("l2", net(x), y, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ddp = load_file(tmp_path / "ddp.safetensors")
    for k, v in net.state_dict().items():
        assert torch.allclose(v, ddp[k], atol=2e-6, rtol=1e-4), k


def _start(preset, results):
    return subprocess.Popen(
        [sys.executable, "-m", "n2n_core.cli", "run", str(preset), "--results-dir", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_for(pred, proc, timeout=120.0) -> bool:
    return wait_for(pred, proc, timeout)


def test_sigkill_after_snapshot_then_resume_is_bit_identical(make_preset, tmp_path):
    p = make_preset(
        train__steps=60, train__snapshot_every=5, train__val_every=0, train__log_every=5
    )
    ref = n2n("run", p, "--results-dir", tmp_path / "a")
    assert ref.code == 0, ref.err
    want = _final_weights(tmp_path / "a" / "00000-tiny")

    run_dir = tmp_path / "b" / "00000-tiny"
    proc = _start(p, tmp_path / "b")
    snap = run_dir / "snapshots" / "snapshot-00000010.safetensors"
    assert _wait_for(snap.exists, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "snapshots" / "final.safetensors").exists(), (
        "run finished before the kill"
    )
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "running"  # killed: nobody could record anything

    r = n2n("resume", run_dir)
    assert r.code == 0, r.err
    got = _final_weights(run_dir)
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished"
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("resumed at step" in r.get("msg", "") for r in recs if r["kind"] == "event")
    steps = [r["step"] for r in recs if r["kind"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 60  # no step logged twice


def test_sigterm_stops_with_snapshot_and_resume_completes(make_preset, tmp_path):
    p = make_preset(
        train__steps=400, train__snapshot_every=0, train__val_every=0, train__log_every=2
    )
    proc = _start(p, tmp_path / "r")
    run_dir = tmp_path / "r" / "00000-tiny"
    metrics = run_dir / "metrics.jsonl"
    assert _wait_for(lambda: metrics.exists() and '"train"' in metrics.read_text(), proc)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "stopped"
    assert info["exit_code"] == 130  # what the process really exited with
    snaps = list((run_dir / "snapshots").glob("snapshot-*.safetensors"))
    assert len(snaps) == 1
    r = n2n_in_process("resume", run_dir)
    assert r.code == 0, r.err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert (run_dir / "snapshots" / "final.safetensors").exists()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_finish_on_cpu(make_preset, tmp_path, precision):
    p = make_preset(train__steps=3, train__val_every=3, train__snapshot_every=0)
    r = n2n_in_process("run", p, "--precision", precision, "--results-dir", tmp_path / "r")
    assert r.code == 0, r.err
    info = json.loads((tmp_path / "r" / "00000-tiny" / "run.json").read_text())
    assert info["precision"] == precision and info["status"] == "finished"


def test_bad_input_under_torchrun_is_one_error_line_and_exit_2(make_preset, photo_dir, tmp_path):
    """Every rank meets the same broken file: one line naming it (not one per rank,
    not torchrun's traceback and failure table), exit 2, no run folder left behind."""
    from cli_helpers import assert_user_error

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in photo_dir.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    png = next(photo_dir.iterdir()).read_bytes()
    (mixed / "zz-broken.png").write_bytes(png[: len(png) // 3])
    p = make_preset(data__train=str(mixed))
    r = n2n("run", p, "--nproc", "2", "--results-dir", tmp_path / "res")
    assert_user_error(r, "zz-broken.png")
    assert r.out == ""
    assert not list((tmp_path / "res").iterdir())
