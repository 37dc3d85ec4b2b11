"""Outputs never destroy what is not a result of ours: inputs, devices, FIFOs, links."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_user_error, n2n_in_process

from n2n_core.engine.network import UNet
from n2n_core.engine.snapshots import save_snapshot


@pytest.fixture
def snap(tmp_path) -> Path:
    torch.manual_seed(0)
    meta = {"step": 1, "preset": {"name": "t"}, "task": "image", "in_channels": 3}
    return save_snapshot(tmp_path / "final.safetensors", UNet(3), meta)


def _same(path: Path, data: bytes) -> bool:
    return path.is_file() and not path.is_symlink() and path.read_bytes() == data


def test_a_command_never_writes_over_its_own_input(snap, tmp_path, val_dir):
    before = snap.read_bytes()
    image = next(val_dir.iterdir())
    assert_user_error(
        n2n_in_process("freeze", "--snapshot", snap, "--out", snap), "would overwrite the input"
    )
    assert_user_error(
        n2n_in_process("infer", "--snapshot", snap, "--image", image, "--out", snap),
        "would overwrite the input",
    )
    assert _same(snap, before)

    data = tmp_path / "data"
    shutil.copytree(val_dir, data)
    images = {p.name: p.read_bytes() for p in data.iterdir()}
    victim = data / sorted(images)[0]
    r = n2n_in_process("dataset", "build", "--src", data, "--out", victim)
    assert_user_error(r, "inside the input folder")
    r = n2n_in_process("validate", "--snapshot", snap, "--dataset-dir", data, "--samples-dir", data)
    assert_user_error(r, "inside the input folder")
    assert {p.name: p.read_bytes() for p in data.iterdir()} == images


def test_export_never_writes_into_a_run_it_reads(tmp_path):
    from n2n_core.runs.info import update_run_info

    run = tmp_path / "00000-a"
    run.mkdir()
    update_run_info(run, status="finished", total_steps=1)
    metrics = run / "metrics.jsonl"
    metrics.write_text('{"kind": "train", "step": 1, "loss": 0.5}\n')
    r = n2n_in_process("export", run, "--csv", metrics)
    assert_user_error(r, "inside the input folder")
    assert metrics.read_text() == '{"kind": "train", "step": 1, "loss": 0.5}\n'


def test_devices_fifos_and_links_are_not_replaced_by_files(snap, tmp_path, val_dir):
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    assert_user_error(
        n2n_in_process("freeze", "--snapshot", snap, "--out", fifo, timeout=60), "FIFO"
    )
    assert fifo.is_fifo()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / "link.png"
    link.symlink_to(precious)
    image = next(val_dir.iterdir())
    r = n2n_in_process("infer", "--snapshot", snap, "--image", image, "--out", link)
    assert_user_error(r, "symlink")
    assert link.is_symlink() and precious.read_text() == "keep me"
    # the engine's own writes refuse too (the last line of defence)
    from n2n_core.errors import UserError
    from n2n_core.files.atomic import atomic_write_bytes

    with pytest.raises(UserError, match="FIFO"):
        atomic_write_bytes(fifo, b"x")
    assert fifo.is_fifo()
    # a folder gone from under a writer (a run folder deleted mid-run) stays an OSError,
    # which the training loop records as the run's failure
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "gone" / "snapshot.safetensors", b"x")
    # an earlier result is a result: replaced as before
    out = tmp_path / "model.onnx"
    out.write_bytes(b"old")
    r = n2n_in_process("freeze", "--snapshot", snap, "--out", out)
    assert r.code == 0, r.err
    assert out.read_bytes() != b"old"
