"""A tiny end-to-end run through the CLI and everything that reads its folder."""

import json
import os

import numpy as np
import pytest
from cli_helpers import assert_user_error, n2n, n2n_in_process
from PIL import Image


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, photo_dir, val_dir):
    import yaml

    d = tmp_path_factory.mktemp("e2e")
    preset = d / "tiny.yaml"
    preset.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "noise": {"type": "gaussian"},
                "data": {"train": str(photo_dir), "val": str(val_dir), "samples": 1},
                # not the paper's network: validate below rebuilds it from the snapshot
                "network": {"residual": True, "padding": "replicate"},
                "train": {
                    "steps": 6,
                    "batch": 2,
                    "crop": 32,
                    "val_every": 3,
                    "snapshot_every": 3,
                    "log_every": 2,
                },
                "runtime": {"device": "cpu", "threads": 1},
            }
        )
    )
    r = n2n("run", preset, "--results-dir", d / "results", "--set", "train.lr=0.002")
    assert r.code == 0, r.err
    run_dir = d / "results" / "00000-tiny"
    return run_dir, r, d


def test_run_folder_layout(tiny_run):
    run_dir, r, _ = tiny_run
    assert f"run folder:     {run_dir}" in r.out
    assert "final snapshot:" in r.out
    for name in ("preset.yaml", "run.json", "metrics.jsonl", "log.txt"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "snapshots" / "snapshot-00000003.safetensors").is_file()
    assert (run_dir / "snapshots" / "snapshot-00000006.safetensors").is_file()
    assert (run_dir / "snapshots" / "final.safetensors").is_file()
    samples = sorted(p.name for p in (run_dir / "samples").glob("*.png"))
    assert samples == ["step-00000003-astronaut.png", "step-00000006-astronaut.png"]
    strip = Image.open(run_dir / "samples" / samples[-1])
    assert strip.size == (97 * 3, 71)  # noisy | denoised | clean


def test_resolved_preset_has_overrides(tiny_run):
    import yaml

    run_dir, _, _ = tiny_run
    p = yaml.safe_load((run_dir / "preset.yaml").read_text())
    assert p["train"]["lr"] == 0.002
    assert p["train"]["rampdown"] == 0.3  # defaults are resolved into the file


def test_run_json(tiny_run):
    run_dir, _, _ = tiny_run
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["exit_code"] == 0
    assert info["device"] == "cpu"
    assert info["world_size"] == 1
    assert info["precision"] == "fp32"
    assert info["total_steps"] == 6
    assert info["ended"] >= info["started"]
    assert info["command"][:2] == ["n2n-core", "run"]


def test_metrics_stream(tiny_run):
    run_dir, _, _ = tiny_run
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["kind"] == "train"]
    val = [r for r in recs if r["kind"] == "val"]
    # every log_every steps, plus validation and snapshot steps (checked before saving)
    assert [r["step"] for r in train] == [2, 3, 4, 6]
    assert all({"time", "loss", "lr", "ms_per_step"} <= r.keys() for r in train)
    assert [r["step"] for r in val] == [3, 6]
    assert all({"time", "psnr", "input_psnr", "dataset"} <= r.keys() for r in val)
    assert any(r["kind"] == "event" for r in recs)


def test_validate_is_reproducible_and_json(tiny_run, val_dir):
    run_dir, _, _ = tiny_run
    snap = run_dir / "snapshots" / "final.safetensors"
    a = n2n_in_process("validate", "--snapshot", snap, "--dataset-dir", val_dir, "--json")
    b = n2n_in_process("validate", "--snapshot", snap, "--dataset-dir", val_dir, "--json")
    assert a.code == 0, a.err
    ja = json.loads(a.out)
    assert a.out == b.out
    assert set(ja) >= {"psnr", "images", "noise", "seed"}
    assert ja["images"] == 2 and ja["noise"] == "gaussian" and ja["seed"] == 0
    # the last val record of the run used the same protocol and data
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last_val = [r for r in recs if r["kind"] == "val"][-1]
    assert ja["psnr"] == pytest.approx(last_val["psnr"], abs=0.006)
    # the colour shift is reported beside PSNR, by validate and in the val records alike
    assert ja["colour_shift"] == pytest.approx(last_val["colour_shift"], abs=0.006)
    assert abs(ja["colour_shift_worst"]) >= ja["colour_shift"] >= 0
    assert ja["colour_shift_worst_image"] in ("astronaut.png", "coffee.png")
    assert ja["colour_shift_worst_channel"] in ("R", "G", "B")
    text = n2n_in_process("validate", "--snapshot", snap, "--dataset-dir", val_dir)
    assert f"PSNR {ja['psnr']:.2f} dB" in text.out
    assert f"colour shift {ja['colour_shift']:.2f}" in text.out


def test_infer_file_and_folder_keep_size(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    snap = run_dir / "snapshots" / "final.safetensors"
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rng.integers(0, 256, (217, 333, 3), dtype=np.uint8)).save(src / "odd.png")
    Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8)).save(src / "gray.png")
    r = n2n_in_process(
        "infer", "--snapshot", snap, "--image", src / "odd.png", "--out", tmp_path / "o.png"
    )
    assert r.code == 0, r.err
    assert Image.open(tmp_path / "o.png").size == (333, 217)
    r = n2n_in_process("infer", "--snapshot", snap, "--image", src, "--out", tmp_path / "outdir")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["gray.png", "odd.png"]
    g = Image.open(tmp_path / "outdir" / "gray.png")
    assert g.size == (50, 40) and g.mode == "L"


def test_runs_and_replay(tiny_run):
    run_dir, _, d = tiny_run
    r = n2n_in_process("runs", "--results-dir", d / "results", "--json")
    runs = json.loads(r.out)["runs"]
    assert len(runs) == 1 and runs[0]["status"] == "finished" and runs[0]["step"] == 6
    r = n2n_in_process("replay", run_dir, "--speed", "0")
    assert r.code == 0 and "PSNR" in r.out


def test_bad_inputs_fail_cleanly(tiny_run, tmp_path, make_preset):
    run_dir, _, d = tiny_run
    assert_user_error(n2n_in_process("run", tmp_path / "missing.yaml"), "missing.yaml")
    p = make_preset(train__crop=48)
    assert_user_error(n2n_in_process("run", p, "--results-dir", tmp_path / "res"), "train.crop")
    p = make_preset(train__crop=256)
    assert_user_error(
        n2n_in_process("run", p, "--results-dir", tmp_path / "res"),
        "train.crop",
        "larger than every image",
    )
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())
    p = make_preset(data__train=str(tmp_path / "nowhere"))
    assert_user_error(
        n2n_in_process("run", p, "--results-dir", tmp_path / "res"), "data.train", "nowhere"
    )
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 10)
    assert_user_error(
        n2n_in_process("validate", "--snapshot", bad, "--dataset-dir", tmp_path), "bad.safetensors"
    )
    assert_user_error(
        n2n_in_process("validate", "--snapshot", run_dir / "snapshots" / "final.safetensors"),
        "--dataset-dir",
    )


def test_cpu_run_log_says_how_openmp_threads_wait(tiny_run):
    """The CLI decided before torch loaded (ompenv), and the log says what, so step times can be read."""
    from n2n_core.process.ompenv import USER_KEYS

    run_dir, _, _ = tiny_run
    line = next(ln for ln in (run_dir / "log.txt").read_text().splitlines() if "cpu threads:" in ln)
    assert "cpu threads: 1, OpenMP " in line
    if not any(k in os.environ for k in USER_KEYS):
        assert "waiters spin" in line or "waiters sleep" in line, line
