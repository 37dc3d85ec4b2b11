"""`n2n-core evaluate`: the matrix through the one validation protocol, baselines, eval records."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import Result, assert_user_error

from n2n_core.cli.main import main
from n2n_core.data.images import save_image
from n2n_core.data.sources import ValImage, open_val
from n2n_core.engine.network import UNet
from n2n_core.engine.noise import noise_at_level
from n2n_core.engine.snapshots import load_network, save_snapshot, snapshot_name
from n2n_core.evaluation.baselines import denoise_bm3d, nlm_params, score_baseline
from n2n_core.evaluation.matrix import plan, run_matrix, store
from n2n_core.evaluation.protocol import torch_runner, validate
from n2n_core.runs.info import update_run_info
from n2n_core.runs.records import EvalRecord, read_metrics
from n2n_core.runs.summary import summarize_run

PRESET = {"name": "tiny-eval", "noise": {"type": "gaussian", "val_sigma": 25.0}}


def _snapshot(path: Path, step: int, seed: int, noise: str = "gaussian") -> Path:
    torch.manual_seed(seed)
    net = UNet(3)
    preset = dict(PRESET, noise={"type": noise})
    meta = {"step": step, "preset": preset, "task": "image", "noise": noise, "in_channels": 3}
    return save_snapshot(path, net, meta)


def _run_dir(root: Path, snapshots: list[tuple[int, int]], status: str = "finished") -> Path:
    """A run folder with a periodic snapshot per (step, seed) and the last as final."""
    d = root / "00000-tiny-eval"
    (d / "snapshots").mkdir(parents=True)
    (d / "preset.yaml").write_text(yaml.safe_dump(PRESET))
    update_run_info(d, status=status, pid=os.getpid(), host=socket.gethostname())
    (d / "metrics.jsonl").write_text(
        json.dumps({"kind": "val", "step": 3, "time": time.time(), "psnr": 20.0}) + "\n"
    )
    for step, seed in snapshots:
        _snapshot(d / "snapshots" / snapshot_name(step), step, seed)
    if snapshots:
        step, seed = snapshots[-1]
        _snapshot(d / "snapshots" / "final.safetensors", step, seed)
    return d


@pytest.fixture
def snap(tmp_path) -> Path:
    return _snapshot(tmp_path / "final.safetensors", 7, 0)


def _cli(capsys, *argv: str) -> Result:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


def test_matrix_equals_validate_to_the_bit(snap, val_dir):
    p = plan([snap], [str(val_dir)], None, [15.0, 50.0], [])
    m = run_matrix(p)
    net, _ = load_network(snap)
    images = open_val(str(val_dir))
    for cell in m.cells:
        res = validate(torch_runner(net), images, noise_at_level("gaussian", cell.level), 0)
        assert cell.psnr == res.psnr and cell.input_psnr == res.input_psnr
        assert cell.colour == res.colour  # the colour shift beside PSNR, same protocol
    assert [c.level for c in m.cells] == [15.0, 50.0]


def test_cli_matrix_equals_cli_validate(snap, val_dir, capsys):
    r = _cli(capsys, "validate", "--snapshot", snap, "--dataset-dir", val_dir, "--json")
    want = json.loads(r.out)
    r = _cli(capsys, "evaluate", snap, "--dataset-dir", val_dir, "--json")
    assert r.code == 0, r.err
    got = json.loads(r.out)
    (cell,) = got["results"]
    assert cell["level"] == 25.0  # the snapshot's own validation sigma by default
    assert (cell["psnr"], cell["input_psnr"], cell["images"]) == (
        want["psnr"],
        want["input_psnr"],
        want["images"],
    )
    assert {"snapshot", "dataset", "noise", "level", "psnr", "input_psnr", "images"} <= set(cell)
    assert cell["colour_shift"] == want["colour_shift"]
    assert cell["colour_shift_worst_image"] == want["colour_shift_worst_image"]
    assert got["best"]["snapshot"] == str(snap)


def test_run_dir_all_snapshots_marks_best_and_stores_eval_records(tmp_path, val_dir, capsys):
    run = _run_dir(tmp_path, [(3, 1), (6, 2)])
    r = _cli(
        capsys,
        "evaluate",
        run,
        "--dataset-dir",
        val_dir,
        "--levels",
        "15,50",
        "--all-snapshots",
        "--baselines",
        "noisy,nlm",
        "--json",
    )
    assert r.code == 0, r.err
    out = json.loads(r.out)
    cells = out["results"]
    # snapshot-3 and final x 2 levels; snapshot-6 holds the same step as final
    assert len(cells) == 4
    means = {}
    for c in cells:
        means.setdefault(c["snapshot"], []).append(c["psnr"])
        assert c["baselines"]["noisy"] == c["input_psnr"]
        assert set(c["seconds"]) == {"network", "noisy", "nlm"}
    best = max(means, key=lambda k: np.mean(means[k]))
    assert out["best"]["snapshot"] == best
    assert all(c["best"] == (c["snapshot"] == best) for c in cells)
    # NLM on the same noise draws is better than the noisy input, more so at sigma 50
    for c in cells:
        assert c["baselines"]["nlm"] > c["input_psnr"]

    evals = [rec for rec in read_metrics(run / "metrics.jsonl") if isinstance(rec, EvalRecord)]
    assert len(evals) == 4
    assert {e.snapshot for e in evals} == {"snapshot-00000003.safetensors", "final.safetensors"}
    assert evals[0].baseline("nlm") == pytest.approx(cells[0]["baselines"]["nlm"], abs=0.006)
    assert evals[0].colour_shift == cells[0]["colour_shift"]
    s = summarize_run(run)
    assert len(s.evals) == 4
    # the matrix ranks snapshots by their mean over every cell ...
    assert s.values.eval_psnr == pytest.approx(out["best"]["mean_psnr"], abs=0.006)
    # ... a run's Eval is one level (its validation level, sigma 25: not evaluated here)
    assert (s.eval_level, s.eval_psnr) == (25.0, None)
    at15 = max(c["psnr"] for c in cells if c["level"] == 15)
    assert s.at_level(15).eval_psnr == pytest.approx(at15, abs=0.006)
    # evaluating again replaces, not adds, the cells a summary shows
    assert _cli(capsys, "evaluate", run, "--dataset-dir", val_dir, "--levels", "15").code == 0
    assert len(summarize_run(run).evals) == 4
    r = _cli(capsys, "runs", "--results-dir", tmp_path, "--json")
    (listed,) = json.loads(r.out)["runs"]
    assert len(listed["eval"]) == 4


def test_running_run_is_not_written(tmp_path, val_dir):
    run = _run_dir(tmp_path, [(3, 1)], status="running")  # our own pid: alive
    before = (run / "metrics.jsonl").read_bytes()
    m = run_matrix(plan([run / "snapshots" / "final.safetensors"], [str(val_dir)], None, None, []))
    assert store(m, run) is False
    assert (run / "metrics.jsonl").read_bytes() == before


def test_baselines_see_the_same_noise_as_validate():
    rng = np.random.default_rng(3)
    imgs = [ValImage(f"{i}.png", rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)) for i in (0, 1)]
    noise = noise_at_level("gaussian", 30)
    identity = validate(lambda b: b, imgs, noise, seed=4)
    assert score_baseline("noisy", imgs, noise, seed=4).psnr == identity.psnr


def test_nlm_parameters_follow_sigma():
    small, large = nlm_params(10 / 255, 3), nlm_params(50 / 255, 3)
    assert (small.patch_size, small.patch_distance) == (3, 10)
    assert (large.patch_size, large.patch_distance) == (5, 17)
    assert small.h == pytest.approx(0.55 * 10 / 255) and large.h == pytest.approx(0.40 * 50 / 255)
    assert nlm_params(90 / 255, 1).patch_size == 11  # the gray table's last row


def test_bm3d_denoises_a_gray_image():
    pytest.importorskip("bm3d")
    clean = np.tile(np.linspace(-0.4, 0.4, 32, dtype=np.float32), (1, 32, 1))
    noisy = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape).astype(np.float32)
    out = denoise_bm3d(noisy, 0.1)
    assert out.shape == clean.shape
    assert np.mean((out - clean) ** 2) < 0.25 * np.mean((noisy - clean) ** 2)


def test_bm3d_missing_is_one_clear_error(snap, val_dir, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bm3d", None)  # import bm3d -> ImportError
    r = _cli(capsys, "evaluate", snap, "--dataset-dir", val_dir, "--baselines", "bm3d")
    assert_user_error(r, "bm3d", "pip install")


def test_bad_input_is_one_error_line(tmp_path, snap, val_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    save_image(mixed / "a.png", np.full((32, 32, 3), [10, 200, 30], np.uint8))
    save_image(mixed / "b.png", np.full((32, 32, 1), 90, np.uint8))
    poisson = _snapshot(tmp_path / "poisson.safetensors", 5, 0, noise="poisson")
    text = _snapshot(tmp_path / "text.safetensors", 5, 0, noise="text")
    no_snaps = _run_dir(tmp_path / "r", [])
    ev = ("evaluate", snap, "--dataset-dir")
    cases = [
        ((*ev, empty), ["empty", "no images"]),
        ((*ev, mixed), ["mixed", "grayscale (b.png)", "colour (a.png)"]),
        ((*ev, val_dir, "--levels", "15,300"), ["--levels 300", "out of range"]),
        ((*ev, val_dir, "--levels", "15,x"), ["--levels", "'x'"]),
        (("evaluate", poisson, "--dataset-dir", val_dir, "--noise", "gaussian"), ["poisson"]),
        (("evaluate", no_snaps, "--dataset-dir", val_dir), [str(no_snaps), "no snapshots"]),
        ((*ev, val_dir, "--all-snapshots"), ["--all-snapshots", "run folder"]),
        ((*ev, val_dir, "--baselines", "wiener"), ["wiener", "noisy, nlm, bm3d"]),
        ((*ev, val_dir, "--noise", "text"), ["trained on gaussian", "--noise text"]),
        (("evaluate", text, "--dataset-dir", val_dir, "--baselines", "nlm"), ["nlm", "text"]),
        ((*ev, tmp_path / "nope"), ["nope", "not found"]),
        (("evaluate", tmp_path / "nope.safetensors", "--dataset-dir", val_dir), ["not found"]),
    ]
    for argv, needles in cases:
        assert_user_error(_cli(capsys, *argv), *needles)


def test_max_images_takes_the_first_by_name(snap, val_dir, capsys):
    r = _cli(capsys, "evaluate", snap, "--dataset-dir", val_dir, "--max-images", "1", "--json")
    assert r.code == 0, r.err
    (cell,) = json.loads(r.out)["results"]
    net, _ = load_network(snap)
    first = open_val(str(val_dir))[:1]
    assert cell["images"] == 1
    assert cell["psnr"] == round(
        validate(torch_runner(net), first, noise_at_level("gaussian", 25)).psnr, 2
    )


def test_progress_counts_every_image_scored(snap, val_dir):
    ticks = []
    p = plan([snap], [str(val_dir)], None, [15.0, 50.0], ["noisy"])
    run_matrix(p, tick=lambda: ticks.append(1))
    assert len(ticks) == p.total_images() == 2 * 2 * 2


def test_a_validation_is_stored_in_the_shape_evaluate_stores(tmp_path, val_dir, capsys):
    """One record shape whoever validates: `validate --json` (what the TUI runs and stores)
    says its level, and the record made of it has every field of evaluate's own record."""
    run = _run_dir(tmp_path, [(3, 1)])
    final = run / "snapshots" / "final.safetensors"
    r = _cli(capsys, "validate", "--snapshot", final, "--dataset-dir", val_dir, "--json")
    result = json.loads(r.out)
    assert result["level"] == 25.0 and result["noise"] == "gaussian"
    mine = EvalRecord.of_validation(
        result, step=3, time=time.time(), snapshot=final.name, dataset=str(val_dir)
    )
    assert _cli(capsys, "evaluate", run, "--dataset-dir", val_dir).code == 0
    theirs = [rec for rec in read_metrics(run / "metrics.jsonl") if isinstance(rec, EvalRecord)]
    # evaluate's record adds only what a matrix has: baselines, per-column seconds, best
    shared = set(theirs[-1].to_json()) - {"baselines", "seconds", "best"}
    assert shared <= set(mine.to_json())
    for key in ("noise", "level", "images", "colour_shift", "colour_shift_worst_image"):
        assert getattr(mine, key) == getattr(theirs[-1], key), key
    assert mine.psnr == pytest.approx(theirs[-1].psnr, abs=0.006)  # validate prints 2 decimals
    assert mine.key == theirs[-1].key  # the same cell: a newer one replaces it
