"""Hostile run folders: deeply nested JSON in metrics.jsonl and run.json, a results folder
that is not there, a replay speed that would never end.

Each is one ``error:`` line (exit 2) or a damaged record skipped, never a traceback,
an "internal error" or a hang. A ``[`` x 50 000 line overflows the JSON decoder's
recursion; the readers treat it as garbage.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from cli_helpers import assert_user_error, n2n_in_process
from helpers.bad_files import DEEP

from n2n_core.runs.info import read_run_info
from n2n_core.runs.records import TrainRecord, parse_lines, parse_record, read_metrics


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, photo_dir, val_dir) -> Path:
    """One finished two-step run (copied by each test that spoils it)."""
    d = tmp_path_factory.mktemp("hostile-run")
    preset = d / "tiny.yaml"
    data = {
        "name": "tiny",
        "noise": {"type": "gaussian"},
        "data": {"train": str(photo_dir), "val": str(val_dir), "samples": 0},
        "train": {
            "steps": 2,
            "batch": 1,
            "crop": 32,
            "val_every": 0,
            "snapshot_every": 0,
            "log_every": 1,
        },
        "runtime": {"device": "cpu", "precision": "fp32", "threads": 1, "sys_every": 0},
    }
    preset.write_text(yaml.safe_dump(data))
    r = n2n_in_process("run", preset, "--results-dir", d / "results")
    assert r.code == 0, r.err
    (run,) = (d / "results").iterdir()
    return run


def _copy_run(run: Path, results: Path, name: str) -> Path:
    dst = results / name
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("snapshots", "tensorboard"))
    return dst


# ---------------------------------------------------------------------------
# deeply nested JSON


def test_deep_json_record_is_skipped_like_garbage(tmp_path):
    assert parse_record(DEEP) is None
    assert parse_record(DEEP.encode()) is None
    good = b'{"kind":"train","step":1,"loss":0.5}'
    recs = parse_lines([good, DEEP.encode(), good.replace(b"1,", b"2,")])
    assert [r.step for r in recs] == [1, 2] and all(isinstance(r, TrainRecord) for r in recs)
    p = tmp_path / "metrics.jsonl"
    p.write_bytes(good + b"\n" + DEEP.encode() + b"\n")
    assert [r.step for r in read_metrics(p)] == [1]


def test_deep_json_in_metrics_leaves_runs_replay_export_working(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "results", "00000-deep")
    with open(run / "metrics.jsonl", "a") as f:
        f.write(DEEP + "\n")
    for args in (
        ("runs", "--results-dir", tmp_path / "results"),
        ("replay", run, "--speed", "1000"),
        ("export", "--markdown", run),
    ):
        r = n2n_in_process(*args, timeout=120)
        assert r.code == 0, (args, r.err)
        assert "internal error" not in r.err and "Traceback" not in r.err


def test_deep_run_json_reads_as_corrupt(tiny_run, tmp_path):
    results = tmp_path / "results"
    good = _copy_run(tiny_run, results, "00000-good")
    bad = _copy_run(tiny_run, results, "00001-bad")
    (bad / "run.json").write_text(DEEP)
    assert read_run_info(bad) is None and read_run_info(good) is not None
    r = n2n_in_process("runs", "--results-dir", results, "--json", timeout=120)
    assert r.code == 0, r.err
    assert "00000-good" in r.out and "00001-bad" in r.out  # listed, marked, not fatal
    for args, needle in ((("tag", bad, "+x"), "cannot tag"), (("note", bad, "hi"), "annotate")):
        assert_user_error(n2n_in_process(*args), "run.json", needle)
    assert (bad / "run.json").read_text() == DEEP  # nothing was overwritten
    for args in (("replay", bad, "--speed", "1000"), ("export", "--markdown", bad)):
        r = n2n_in_process(*args, timeout=120)
        assert r.code in (0, 2) and "internal error" not in r.err and "Traceback" not in r.err


# ---------------------------------------------------------------------------
# a results folder that is not there; a replay that would never end


def test_a_results_dir_that_is_not_there_is_a_typo_not_an_empty_table(tmp_path):
    for where, why in ((tmp_path / "nope", "no such folder"), (Path(os.devnull), "not a folder")):
        r = n2n_in_process("runs", "--results-dir", where)
        assert_user_error(r, "--results-dir", str(where), why)


@pytest.mark.parametrize("speed", ["1e-308", "0.0001", "inf"])
def test_replay_speed_that_would_never_end_is_refused(tiny_run, speed):
    r = n2n_in_process("replay", tiny_run, "--speed", speed, timeout=60)
    assert_user_error(r, "--speed", speed)
