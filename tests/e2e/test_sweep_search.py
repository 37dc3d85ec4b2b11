"""Searches with real tiny runs: each trial a real `n2n-core resume` process of a few steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import n2n

from n2n_core.sweeps.view import read_view

optuna = pytest.importorskip("optuna")


def _cmd(preset: Path, res: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "n2n_core.cli",
        "sweep",
        str(preset),
        *flags,
        "--results-dir",
        str(res),
    ]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("N2N_DEBUG", None)
    return env


def _view(sweep_dir: Path) -> dict:
    return json.loads(json.dumps(read_view(sweep_dir).to_json()))


def _trials(sweep_dir: Path) -> list:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "study.journal")))
    return optuna.load_study(study_name="n2n", storage=storage).trials


def test_seeded_tpe_chooses_other_points_than_random(make_preset, tmp_path):
    """Same seed, same first (random start-up) point; then TPE models the first result and
    proposes something a random draw does not."""
    preset = make_preset(train__steps=2, train__val_every=1, train__snapshot_every=0)
    space = ["--space", "train.lr=loguniform(1e-4,1e-2)", "--space", "train.batch=int(1,4)"]
    flags = ["--trials", "2", "--search-seed", "7", "--name", "s", *space]
    procs = {  # two results folders: the two searches run side by side
        kind: subprocess.Popen(
            _cmd(preset, tmp_path / kind, "--search", kind, "--startup", "1", *flags),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
        for kind in ("tpe", "random")
    }
    for kind, p in procs.items():
        out = p.communicate(timeout=300)[0].decode()
        assert p.returncode == 0, (kind, out)
    params = {}
    for kind in procs:
        view = _view(tmp_path / kind / "sweeps" / "00000-s")
        assert [p["status"] for p in view["points"]] == ["finished", "finished"]
        assert [p["trial"] for p in view["points"]] == [0, 1]
        assert all(p["value"] is not None for p in view["points"])
        params[kind] = [p["params"] for p in view["points"]]
    assert params["tpe"][0] == params["random"][0]
    assert params["tpe"][1] != params["random"][1]


@pytest.mark.xfail(
    strict=False,
    reason="flaky inside the whole suite (the hopeless trial sometimes ends unpruned; passes "
    "alone): being diagnosed, see the stop note of 2026-12-05",
)
def test_median_pruning_stops_the_hopeless_region(make_preset, val_dir, tmp_path):
    """lr 1e-12 never moves the network: its PSNR stays below the completed trial's, and the
    median pruner stops it (through the verified stop, a snapshot kept); the good one runs
    to its end. (The objective is the run's own best PSNR: with `eval:DATASET` the good trial
    completes only once its evaluation ends, and the median pruner counts completed trials
    alone, so whether the second trial could be pruned would depend on which ended first.)"""
    res = tmp_path / "res"
    # One slot: the good trial completes first (the median pruner needs one completed
    # trial), then the hopeless one runs, long enough that the stop lands well before its
    # end on a fast machine: rejected at its second validation, the scheduler looks every 0.5 s.
    preset = make_preset(train__steps=400, train__val_every=5, train__snapshot_every=0)
    r = n2n(
        "sweep", preset, "--search", "grid", "--space", "train.lr=choice(0.003,1e-12)",
        "--prune", "median", "--prune-startup", "1", "--prune-warmup", "5", "--slots", "1",
        "--name", "p", "--results-dir", res,
    )  # fmt: skip
    assert r.code == 0, (r.out, r.err)
    sweep_dir = res / "sweeps" / "00000-p"
    view = _view(sweep_dir)
    status = {p["params"]["train.lr"]: p["status"] for p in view["points"]}
    assert status == {0.003: "finished", 1e-12: "pruned"}
    assert view["status"] == "finished" and view["search"]["pruned"] == 1
    assert "1 pruned" in view["message"]
    for p in view["points"][1:]:
        run = res / p["run"]
        assert p["step"] < 400  # stopped early ...
        assert json.loads((run / "run.json").read_text())["status"] == "stopped"
        assert any((run / "snapshots").glob("*.safetensors"))  # ... resumable by hand
        assert p["value"] == pytest.approx(p["last_psnr"], abs=0.01)  # its last value told
    states = [t.state for t in _trials(sweep_dir)]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert view["search"]["best"]["params"] == {"train.lr": 0.003}
    assert view["points"][0]["value"] == pytest.approx(view["points"][0]["best_psnr"], abs=0.01)
    r = n2n("sweep", "status", sweep_dir)
    assert "best: trial 0" in r.out and "× pruned" in r.out


def test_sigkilled_search_resumes_to_exactly_its_trials(make_preset, tmp_path):
    """The scheduler is killed while its first trial trains: resumed, that trial continues
    from its snapshot (same trial, same run folder) and the second is asked; no third."""
    res = tmp_path / "res"
    preset = make_preset(train__steps=12, train__val_every=4, train__snapshot_every=0)
    flags = ["--search", "random", "--trials", "2", "--space", "train.lr=loguniform(1e-4,1e-2)"]
    scheduler = subprocess.Popen(
        _cmd(preset, res, *flags, "--name", "k"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    sweep_dir = res / "sweeps" / "00000-k"
    first = res / "00000-k-t000"
    metrics = first / "metrics.jsonl"
    try:
        deadline = time.monotonic() + 240
        while not (metrics.exists() and '"train"' in metrics.read_text()):
            assert time.monotonic() < deadline, "the first trial never trained"
            time.sleep(0.1)
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait(timeout=30)
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait()
    deadline = time.monotonic() + 60  # the orphaned point stops (SIGTERM from its lifeline)
    while json.loads((first / "run.json").read_text())["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert json.loads((first / "run.json").read_text())["status"] == "stopped"
    view = _view(sweep_dir)
    assert view["status"] == "interrupted" and len(view["points"]) == 1
    assert [t.state for t in _trials(sweep_dir)] == [optuna.trial.TrialState.RUNNING]

    r = n2n("sweep", "resume", sweep_dir)
    assert r.code == 0, (r.out, r.err)
    view = _view(sweep_dir)
    assert [p["status"] for p in view["points"]] == ["finished"] * 2
    assert [p["trial"] for p in view["points"]] == [0, 1]
    assert view["points"][0]["run"] == first.name and view["points"][0]["step"] == 12
    assert len([d for d in res.iterdir() if d.name != "sweeps"]) == 2  # no extra run folder
    trials = _trials(sweep_dir)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert [round(t.value, 2) for t in trials] == [p["value"] for p in view["points"]]
    assert "resumed at step" in metrics.read_text()  # continued from its snapshot
