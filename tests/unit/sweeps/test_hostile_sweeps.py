"""Hostile sweep input: deep or special sweep.json files, huge grids; one `error:` line each."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import Result, assert_user_error, n2n_in_process
from helpers.bad_files import DEEP

from n2n_core.errors import UserError
from n2n_core.sweeps.plan import plan_sweep

MAX_POINTS = 10_000  # sweep.MAX_POINTS


def _fake_sweep(results: Path) -> Path:
    d = results / "sweeps" / "00000-x"
    d.mkdir(parents=True)
    return d


def test_deep_sweep_json_is_one_error(tmp_path):
    sweep = _fake_sweep(tmp_path / "results")
    (sweep / "sweep.json").write_text(DEEP)
    for verb in ("status", "cancel", "resume"):
        assert_user_error(n2n_in_process("sweep", verb, sweep, timeout=60), "sweep.json")


def _capped_n2n(*args: str) -> Result:
    """``n2n`` with its heap capped at 2 GiB: a sweep that would build every point of a
    huge grid fails with MemoryError instead of taking the machine's memory."""
    env = dict(os.environ)
    env.pop("N2N_DEBUG", None)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))

    p = subprocess.run(
        [sys.executable, "-m", "n2n_core.cli", *map(str, args)],
        capture_output=True, text=True, timeout=120, env=env,
        stdin=subprocess.DEVNULL, preexec_fn=cap,
    )  # fmt: skip
    return Result(p.returncode, p.stdout, p.stderr)


def test_sweep_size_is_bounded_before_anything_is_built(make_preset, tmp_path):
    preset = make_preset()
    with pytest.raises(UserError, match=f"at most {MAX_POINTS}"):
        plan_sweep(preset, ["train.lr=0.001"], [], 20_000)
    values = ",".join(str(i) for i in range(1, 102))
    with pytest.raises(UserError, match="20200 points asked for"):
        plan_sweep(preset, [f"data.samples={values}", "train.lr=1e-3,2e-3"], [], 100)
    for seeds in ("99999999999999999999", "100000"):
        r = _capped_n2n(
            "sweep", preset, "--grid", "train.lr=0.001", "--seeds", seeds,
            "--results-dir", tmp_path / "res",
        )  # fmt: skip
        assert_user_error(r, "--seeds", str(MAX_POINTS))
    r = n2n_in_process(
        "sweep", preset, "--set", "train.seed=4294967290", "--seeds", "10",
        "--results-dir", tmp_path / "res",
    )  # fmt: skip
    assert_user_error(r, "--seeds 10", "train.seed")
    assert not (tmp_path / "res").exists()


def test_unknown_section_in_a_grid_is_one_error(make_preset, tmp_path):
    for grid, needle in (("nosuch.key=1,2", "nosuch: unknown key"), ("name.x=1,2", "name")):
        r = n2n_in_process(
            "sweep", make_preset(), "--grid", grid, "--results-dir", tmp_path / "res"
        )
        assert_user_error(r, f"--grid {grid.partition('=')[0]}", needle)
    assert not (tmp_path / "res").exists()


def test_fifo_at_sweep_json_never_hangs(tmp_path):
    sweep = _fake_sweep(tmp_path / "results")
    os.mkfifo(sweep / "sweep.json")
    for verb in ("status", "cancel", "resume"):
        assert_user_error(n2n_in_process("sweep", verb, sweep, timeout=60), "sweep.json", "FIFO")
