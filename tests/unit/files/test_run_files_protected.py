"""No command writes over another run's own files: run.json, metrics, preset, log,
lock, snapshots, validation samples, TensorBoard events. Outputs beside them that
are not the run's (an ONNX model frozen from a snapshot, a denoised picture) are fine."""

from __future__ import annotations

import json

import pytest

from n2n_core.cli.main import main
from n2n_core.errors import UserError
from n2n_core.files.output import check_output
from n2n_core.runs.info import update_run_info
from n2n_core.runs.layout import run_file_owner


@pytest.fixture
def two_runs(tmp_path):
    runs = []
    for name in ("00000-a", "00001-b"):
        run = tmp_path / name
        (run / "snapshots").mkdir(parents=True)
        (run / "samples").mkdir()
        (run / "tensorboard").mkdir()
        update_run_info(run, status="finished", total_steps=1)
        (run / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 0.5}\n')
        (run / "preset.yaml").write_text("name: x\n")
        (run / "samples" / "step-00000001-coffee.png").write_bytes(b"png")
        (run / "snapshots" / "final.safetensors").write_bytes(b"weights")
        runs.append(run)
    return runs


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize(
    "target",
    [
        "run.json",
        "metrics.jsonl",
        "preset.yaml",
        "log.txt",
        ".lock",
        "samples/step-00000001-coffee.png",
        "samples/step-00000099-new.png",
        "snapshots/final.safetensors",
        "snapshots/snapshot-00000100.safetensors",
        "tensorboard/events.out",
    ],
)
def test_export_never_writes_another_runs_files(two_runs, capsys, target):
    a, b = two_runs
    before = {p: p.read_bytes() for p in b.rglob("*") if p.is_file()}
    code = main(["export", str(a), "--csv", str(b / target)])
    assert code == 2
    line = _one_error(capsys)
    assert "only that run writes" in line and str(b) in line
    assert {p: p.read_bytes() for p in b.rglob("*") if p.is_file()} == before
    assert json.loads((b / "run.json").read_text())["status"] == "finished"


def test_a_link_to_a_runs_file_is_that_file(two_runs, tmp_path):
    _, b = two_runs
    link = tmp_path / "innocent.csv"
    link.symlink_to(b / "run.json")
    assert run_file_owner(link) == b
    with pytest.raises(UserError):
        check_output(b / "metrics.jsonl", "the CSV file")


def test_what_is_not_the_runs_own_may_sit_beside_it(two_runs, tmp_path):
    _, b = two_runs
    for out in (
        b / "snapshots" / "final.onnx",  # frozen from a snapshot (the TUI puts it there)
        b / "samples" / "infer-coffee-final.png",  # a denoised picture from the TUI
        tmp_path / "elsewhere.csv",
    ):
        assert run_file_owner(out) is None
        check_output(out, "an output")
    # The run's own writer replaces its files atomically.
    check_output(b / "run.json", "run.json", ours=True)
