"""A run that goes wrong ends ``failed`` with an event, keeping the last good snapshot."""

from __future__ import annotations

import errno
import json

import torch

from n2n_core.config import load_preset
from n2n_core.snapshots import read_snapshot
from n2n_core.task import ImageTask
from n2n_core.train import prepare_run, train_worker


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
    import n2n_core.snapshots as snapshots

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
    from cli_helpers import assert_user_error, n2n

    p = make_preset(train__snapshot_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    assert_user_error(n2n("resume", run_dir), "no complete snapshot to resume from")
