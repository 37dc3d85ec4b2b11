"""``n2n-core rerun``: a finished tiny run, run again from its folder, reproduces its loss
curve bit for bit; what differs from the original's provenance is said first, and
``diff`` shows it under the preset keys."""

from __future__ import annotations

import json
from pathlib import Path

from n2n_core.runs.info import read_run_info
from n2n_core.runs.records import TrainRecord, read_metrics
from tests.cli_helpers import assert_user_error, n2n_in_process

TINY = [
    "--set", "train.steps=4", "--set", "train.crop=32", "--set", "train.log_every=1",
    "--set", "train.val_every=0", "--set", "train.snapshot_every=0",
    "--set", "data.train=builtin:photos", "--set", "data.val=builtin:photos-holdout",
    "--set", "data.samples=0",
]  # fmt: skip


def _losses(run: Path) -> list[float]:
    return [r.loss for r in read_metrics(run / "metrics.jsonl") if isinstance(r, TrainRecord)]


def _runs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir() and p.name[:5].isdigit())


def test_rerun_reproduces_the_loss_curve_and_says_what_differs(tmp_path):
    results = tmp_path / "r"
    # precision auto: bf16 where the CPU computes it natively (AMX/avx512_bf16), else fp32.
    r = n2n_in_process("run", "quickstart", *TINY, "--results-dir", results, cwd=tmp_path)
    assert r.code == 0, r.err
    (a,) = _runs(results)
    r = n2n_in_process("rerun", a, cwd=tmp_path)
    assert r.code == 0, r.err
    assert "warning" not in r.err
    a2 = _runs(results)[-1]
    assert a2 != a and _losses(a2) == _losses(a) and len(_losses(a)) == 4
    assert read_run_info(a2).rerun_of == str(a.resolve())
    assert read_run_info(a2).precision == read_run_info(a).precision

    # --set on top (fp32 on every CPU), and a knob that changes cuBLAS's numbers: the rerun
    # warns before it starts, and the curve of an fp32 run is reproduced too.
    r = n2n_in_process("rerun", a, "--set", "runtime.precision=fp32", cwd=tmp_path)
    assert r.code == 0, r.err
    b = _runs(results)[-1]
    assert 'runtime.precision: "auto" -> "fp32"' in r.out
    assert read_run_info(b).rerun_of == str(a.resolve())
    r = n2n_in_process("rerun", b, cwd=tmp_path, env={"CUBLAS_WORKSPACE_CONFIG": ":4096:8"})
    assert r.code == 0, r.err
    b2 = _runs(results)[-1]
    assert _losses(b2) == _losses(b)
    assert read_run_info(b2).precision == "fp32"
    warned = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert warned == [
        'warning: differs from the original: knobs.CUBLAS_WORKSPACE_CONFIG: (absent) -> ":4096:8"'
    ]

    r = n2n_in_process("diff", b, b2)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "no preset keys differ"
    assert '  knobs.CUBLAS_WORKSPACE_CONFIG: (absent) -> ":4096:8"' in lines
    r = n2n_in_process("diff", a, b, "--json")
    out = json.loads(r.out)
    assert {"key": "runtime.precision", "a": "auto", "b": "fp32"} in out["differ"]
    assert isinstance(out["provenance"], list)


def test_rerun_refuses_what_is_not_a_run_folder(tmp_path):
    assert_user_error(n2n_in_process("rerun", tmp_path / "nope"), "nope", "not a run folder")
    assert_user_error(n2n_in_process("rerun", tmp_path), str(tmp_path), "not a run folder")
    run = tmp_path / "00000-x"
    run.mkdir()
    (run / "run.json").write_text("{}")
    assert_user_error(n2n_in_process("rerun", run), "preset.yaml")


def test_a_queued_point_records_provenance_when_it_starts(tmp_path):
    from n2n_core.config.schema import validate_preset
    from n2n_core.runs.folders import prepare_run

    preset = validate_preset(
        {
            "name": "q",
            "data": {"train": "builtin:photos", "val": None, "samples": 0},
            "train": {"steps": 2, "batch": 1, "crop": 32, "val_every": 0, "snapshot_every": 0},
            "runtime": {"device": "cpu", "precision": "fp32"},
        }
    )
    run = prepare_run(preset, tmp_path, None, ["test"], queued=True)
    assert read_run_info(run).provenance is None  # a sweep's scheduler may run it elsewhere
    r = n2n_in_process("resume", run)
    assert r.code == 0, r.err
    p = read_run_info(run).provenance
    assert set(p) == {"code", "versions", "host", "knobs", "data", "torch"}
    assert p["data"]["train"]["images"] == 6 and p["torch"]["device"] == "cpu"


def test_a_relative_data_path_is_the_one_the_original_read(tmp_path, monkeypatch):
    from n2n_core.training.launch import _same_data

    (tmp_path / "imgs").mkdir()
    recorded = {"data": {"train": {"path": str(tmp_path / "imgs")}, "val": None}}
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = _same_data({"data": {"train": "noisy:imgs", "val": None}}, recorded, [])
    assert data["data"]["train"] == f"noisy:{tmp_path / 'imgs'}"
    # --set data.train names other data: left alone
    data = _same_data({"data": {"train": "imgs"}}, recorded, ["data.train=imgs"])
    assert data["data"]["train"] == "imgs"
    monkeypatch.chdir(tmp_path)  # from the original's folder: nothing to change
    assert _same_data({"data": {"train": "imgs"}}, recorded, [])["data"]["train"] == "imgs"
