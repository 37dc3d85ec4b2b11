"""Making a built-in model from a run: fp16 weights, the record, scores from the stored weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

from n2n_core.engine.snapshots import read_snapshot
from n2n_core.errors import UserError
from n2n_core.pretrained import HOLDOUT
from n2n_core.pretrained.pack import pack_run, score_snapshot
from n2n_core.runs.layout import RunPaths


def test_pack_stores_fp16_weights_and_the_score_they_give(tmp_path, snapshot):
    run = tmp_path / "00003-tiny"
    RunPaths(run).snapshots.mkdir(parents=True)
    shutil.copy(snapshot, RunPaths(run).final_snapshot)
    out = tmp_path / "tiny.safetensors"
    record = pack_run(run, "tiny", out, "tiny", "c" * 40, "n2n-core run tiny")
    assert record["steps"] == 1 and record["commit"] == "c" * 40 and record["preset"] == "tiny"
    assert record["source_run"] == "00003-tiny" and record["dtype"] == "float16"
    with safe_open(str(out), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
        assert json.loads(f.metadata()["builtin"]) == record
    # The weights are the run's, rounded to fp16; nothing of the optimizer comes along.
    packed, original = read_snapshot(out), read_snapshot(snapshot)
    assert packed.weights.keys() == original.weights.keys()
    for k, w in original.weights.items():
        assert torch.equal(packed.weights[k], w.half())
    # The recorded score is what the stored file gives, to the bit.
    (score,) = record["scores"]
    assert score["dataset"] == HOLDOUT and score["level"] == 25
    assert score_snapshot(out, HOLDOUT).psnr == score["psnr"]


def test_pack_refuses_a_run_without_a_final_snapshot(tmp_path):
    with pytest.raises(UserError, match="no snapshots/final.safetensors"):
        pack_run(tmp_path, "x", tmp_path / "x.safetensors", "x", "c", "r")
    assert not (tmp_path / "x.safetensors").exists()
