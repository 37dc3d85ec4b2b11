"""`n2n-core diff` and `n2n-core export` (CSV, plot, Markdown); curves and preset diffs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from cli_helpers import Result, assert_user_error
from helpers import FIXTURES

from n2n_core.cli.main import main
from n2n_core.config.diff import ABSENT, flat_keys, preset_diff
from n2n_core.runs.curves import curve, ema
from n2n_core.runs.info import update_run_info
from n2n_core.runs.records import EvalRecord, parse_record

PRESET = {
    "name": "a",
    "noise": {"type": "gaussian", "train_sigma": [0, 50]},
    "train": {"steps": 100, "lr": 0.001, "crop": 64},
}


def _records() -> list[dict]:
    recs = [{"kind": "event", "step": 0, "time": 1000.0, "msg": "start", "level": "info"}]
    for step in (10, 20, 30):
        recs.append(
            {
                "kind": "train",
                "step": step,
                "time": 1000.0 + step * 6,
                "loss": 0.1 / step,
                "lr": 0.001,
                "ms_per_step": 50.0 + step,
            }
        )
    recs.append(
        {
            "kind": "val",
            "step": 30,
            "time": 1200.0,
            "psnr": 27.5,
            "input_psnr": 20.1,
            "colour_shift": 0.612,
            "colour_shift_worst": -1.5,
        }
    )
    ev = EvalRecord(
        step=30,
        time=1300.0,
        snapshot="final.safetensors",
        dataset="kodak|24",
        noise="gaussian",
        level=25.0,
        psnr=28.25,
        input_psnr=20.17,
        images=24,
        baselines={"nlm": 26.9},
        seconds={"network": 3.0, "nlm": 5.0},
        best=True,
        colour_shift=0.81,
        colour_shift_worst=2.25,
    )
    return [*recs, ev.to_json()]


def _run(root: Path, name: str, preset: dict) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "preset.yaml").write_text(yaml.safe_dump(preset))
    update_run_info(d, status="finished", total_steps=30, device="cpu", precision="bf16")
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records()))
    return d


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    other = {**PRESET, "train": {**PRESET["train"], "lr": 0.0003}, "description": "x"}
    return _run(tmp_path, "00000-a", PRESET), _run(tmp_path, "00001-b", other)


def _cli(capsys, *argv) -> Result:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


def test_flat_keys_and_preset_diff():
    assert flat_keys(PRESET)["noise.train_sigma"] == [0, 50]
    assert flat_keys({"a": {}}) == {"a": {}}
    b = {**PRESET, "train": {**PRESET["train"], "crop": 128}, "extra": 1}
    assert preset_diff(PRESET, b) == [("train.crop", 64, 128), ("extra", ABSENT, 1)]
    assert preset_diff(PRESET, PRESET) == []


def test_diff_prints_the_differing_dotted_keys(runs, capsys):
    a, b = runs
    r = _cli(capsys, "diff", a, b)
    assert r.code == 0
    assert r.out.splitlines() == [
        "train.lr: 0.001 -> 0.0003",
        'description: (absent) -> "x"',
        "provenance: no differences",
    ]
    r = _cli(capsys, "diff", a, b, "--json")
    assert json.loads(r.out)["differ"][0] == {"key": "train.lr", "a": 0.001, "b": 0.0003}
    assert _cli(capsys, "diff", a, a).out.splitlines()[0] == "no preset keys differ"


def test_diff_bad_input(runs, tmp_path, capsys):
    a, _ = runs
    assert_user_error(_cli(capsys, "diff", a, tmp_path / "nope"), "nope", "not found")
    (a / "preset.yaml").unlink()
    assert_user_error(_cli(capsys, "diff", a, a), "preset.yaml")


def test_export_csv_has_one_row_per_record_and_every_field(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "m.csv"
    assert _cli(capsys, "export", a, b, "--csv", out).code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 2 * len(_records())
    assert {"run", "kind", "step", "loss", "psnr", "baselines.nlm", "seconds.network"} <= set(
        rows[0]
    )
    ev = [r for r in rows if r["kind"] == "eval"][0]
    assert (ev["run"], ev["dataset"], ev["baselines.nlm"]) == ("00000-a", "kodak|24", "26.9")


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_export_plot(runs, tmp_path, capsys, suffix, magic):
    pytest.importorskip("matplotlib")
    out = tmp_path / f"curves{suffix}"
    assert _cli(capsys, "export", *runs, "--plot", out, "--x", "time").code == 0
    assert out.read_bytes().startswith(magic)


def test_export_markdown_lists_runs_and_their_evaluation(runs, capsys):
    r = _cli(capsys, "export", *runs, "--markdown")
    assert r.code == 0
    lines = r.out.splitlines()
    # the colour shift beside each PSNR: the last validation's, and each evaluation cell's
    assert lines[2].startswith(
        "| 00000-a | finished | cpu×1 bf16 | 30/30 | 27.50 | 20.10 | 0.61 (-1.50) | 28.25 |"
    )
    # a pipe in a data set name cannot add a column
    row = next(ln for ln in lines if ln.startswith("| final.safetensors"))
    assert "kodak\\|24" in row and row.count(" | ") == lines[-1].count(" | ")
    assert "| 28.25 | 20.17 | 0.81 (+2.25) | 26.90 |" in row  # network, noisy input, shift, nlm


def test_export_markdown_rows_survive_control_characters(tmp_path, capsys):
    d = _run(tmp_path, "00000-a", PRESET)
    update_run_info(d, device="cuda\r| x | y |\t")  # a hand-edited run.json
    r = _cli(capsys, "export", d, "--markdown")
    assert r.code == 0
    row = r.out.splitlines()[2]
    assert "\r" not in r.out and "cuda \\| x \\| y \\|" in row
    assert row.count(" | ") == r.out.splitlines()[0].count(" | ")


def test_export_bad_paths(runs, tmp_path, capsys):
    a, _ = runs
    assert_user_error(
        _cli(capsys, "export", a, "--csv", tmp_path / "no" / "m.csv"), "m.csv", "not found"
    )
    assert_user_error(_cli(capsys, "export", a, "--plot", tmp_path / "p.jpg"), ".png or .svg")
    assert_user_error(_cli(capsys, "export", a, "--csv", tmp_path), "is a folder")
    # a folder nobody may create files in, root included (Linux)
    if Path("/sys").is_dir():
        assert_user_error(
            _cli(capsys, "export", a, "--csv", "/sys/m.csv"), "/sys/m.csv", "cannot write"
        )
    assert_user_error(_cli(capsys, "export", tmp_path / "nope"), "nope")


def test_curves_by_step_and_time_and_ema():
    recs = [parse_record(r) for r in _records()]
    assert curve(recs, "loss") == ([10.0, 20.0, 30.0], [0.01, 0.005, 0.1 / 30])
    xs, _ = curve(recs, "psnr", "time")
    assert xs == [pytest.approx(200 / 60)]  # minutes since the first record
    assert ema([1.0]) == [1.0]  # bias-corrected: starts at the first value
    smoothed = ema([0.0, 10.0, 10.0, 10.0], 0.5)
    assert smoothed[0] == 0.0 and smoothed[1] < smoothed[2] < smoothed[3] < 10.0


def test_export_csv_flattens_sys_records_per_rank_and_device(tmp_path, capsys):
    import shutil

    run = tmp_path / "00000-sampled"
    shutil.copytree(FIXTURES / "pictures" / "00000-sampled", run)
    out = tmp_path / "m.csv"
    assert main(["export", str(run), "--csv", str(out)]) == 0
    rows = [r for r in csv.DictReader(out.open()) if r["kind"] == "sys"]
    assert [r["step"] for r in rows] == ["500", "1000", "1500", "2000", "2500", "3000"]
    assert rows[-1]["rank1.data_wait"] == "0.187" and rows[-1]["rank1.device1.util_pct"] == "78.0"
    assert rows[-1]["rank0.device0.power_w"] == "402.5" and "ranks" not in rows[-1]
