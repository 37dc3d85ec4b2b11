"""Hostile inputs found by a tester: each is one ``error:`` line (exit 2) or a damaged file
skipped, never a traceback, an "internal error", a hang or gigabytes of memory.

Deeply nested JSON (``[`` x 50 000) overflows the JSON decoder's recursion in
metrics.jsonl, run.json, sweep.json and a packed data set's header; out-of-range
numbers in presets (train.seed, train.steps, runtime.sys_every); huge sweeps; a
FIFO or folder where a file is read (sweep.json, a download).
"""

from __future__ import annotations

import os
import resource
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from cli_helpers import Result, assert_user_error, n2n

from n2n_core.data.fetch import CATALOGUE, Remote, download
from n2n_core.data.packed import MAGIC, open_packed
from n2n_core.engine.sysmon import SysMonitor
from n2n_core.errors import UserError
from n2n_core.runs.info import read_run_info
from n2n_core.runs.records import TrainRecord, parse_lines, parse_record, read_metrics
from n2n_core.sweeps.store import plan_sweep

DEEP = "[" * 50_000  # past Python's recursion limit in json.loads
MAX_POINTS = 10_000  # sweep.MAX_POINTS
MAX_INTERVAL_S = 86_400.0  # sysmon.MAX_INTERVAL_S


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
    r = n2n("run", preset, "--results-dir", d / "results")
    assert r.code == 0, r.err
    (run,) = (d / "results").iterdir()
    return run


def _copy_run(run: Path, results: Path, name: str) -> Path:
    dst = results / name
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("snapshots", "tensorboard"))
    return dst


# ---------------------------------------------------------------------------
# 1. deeply nested JSON


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
        r = n2n(*args, timeout=120)
        assert r.code == 0, (args, r.err)
        assert "internal error" not in r.err and "Traceback" not in r.err


def test_deep_run_json_reads_as_corrupt(tiny_run, tmp_path):
    results = tmp_path / "results"
    good = _copy_run(tiny_run, results, "00000-good")
    bad = _copy_run(tiny_run, results, "00001-bad")
    (bad / "run.json").write_text(DEEP)
    assert read_run_info(bad) is None and read_run_info(good) is not None
    r = n2n("runs", "--results-dir", results, "--json", timeout=120)
    assert r.code == 0, r.err
    assert "00000-good" in r.out and "00001-bad" in r.out  # listed, marked, not fatal
    for args, needle in ((("tag", bad, "+x"), "cannot tag"), (("note", bad, "hi"), "annotate")):
        assert_user_error(n2n(*args), "run.json", needle)
    assert (bad / "run.json").read_text() == DEEP  # nothing was overwritten
    for args in (("replay", bad, "--speed", "1000"), ("export", "--markdown", bad)):
        r = n2n(*args, timeout=120)
        assert r.code in (0, 2) and "internal error" not in r.err and "Traceback" not in r.err


def _fake_sweep(results: Path) -> Path:
    d = results / "sweeps" / "00000-x"
    d.mkdir(parents=True)
    return d


def test_deep_sweep_json_is_one_error(tmp_path):
    sweep = _fake_sweep(tmp_path / "results")
    (sweep / "sweep.json").write_text(DEEP)
    for verb in ("status", "cancel", "resume"):
        assert_user_error(n2n("sweep", verb, sweep, timeout=60), "sweep.json")


def _packed(path: Path, hlen: int, header: bytes) -> Path:
    path.write_bytes(MAGIC + struct.pack("<Q", hlen) + header)
    return path


def test_packed_header_deep_or_past_the_end_is_one_error(tmp_path, make_preset):
    deep = _packed(tmp_path / "deep.n2nd", len(DEEP), DEEP.encode())
    huge = _packed(tmp_path / "huge.n2nd", 2**63, b"{}")
    big = _packed(tmp_path / "big.n2nd", 2**40, b"{}")  # would allocate a terabyte
    for p in (deep, huge, big):
        with pytest.raises(UserError, match="truncated or corrupt"):
            open_packed(p)
    for p in (deep, huge):
        r = n2n("run", make_preset(data__train=str(p)), "--results-dir", tmp_path / "res")
        assert_user_error(r, p.name, "corrupt")


# ---------------------------------------------------------------------------
# 3, 4. numbers out of range in a preset


@pytest.mark.parametrize(
    "setting, key",
    [
        ("train.seed=99999999999999999999999", "train.seed"),
        ("train.seed=4294967296", "train.seed"),
        ("train.steps=10000000000", "train.steps"),
        ("train.steps=true", "train.steps"),
        ("train.seed=true", "train.seed"),
        ("runtime.sys_every=inf", "runtime.sys_every"),
        ("runtime.sys_every=1e12", "runtime.sys_every"),
        ("runtime.sys_every=nan", "runtime.sys_every"),
        ("data.train=", "data.train"),  # empty: was "error: : no images found"
        ("data.train=noisy:  ", "data.train"),
        ("data.val=clean:", "data.val"),
        ("network.padding=reflect", "network.padding"),
    ],
)
def test_out_of_range_numbers_are_preset_errors_before_any_run_folder(
    setting, key, make_preset, tmp_path
):
    r = n2n("run", make_preset(), "--set", setting, "--results-dir", tmp_path / "res")
    assert_user_error(r, key)
    assert not (tmp_path / "res").exists()


def test_sysmon_clamps_an_interval_it_cannot_arm(monkeypatch):
    crashed = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    for interval in (float("inf"), 1e12):
        mon = SysMonitor(0, "cpu", None, interval).start()
        assert mon.interval == MAX_INTERVAL_S
        mon.close()
    assert SysMonitor(0, "cpu", None, float("nan")).interval == 0
    assert crashed == []


# ---------------------------------------------------------------------------
# 5, 6. sweeps: bounded, and one line per problem


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
    r = n2n(
        "sweep", preset, "--set", "train.seed=4294967290", "--seeds", "10",
        "--results-dir", tmp_path / "res",
    )  # fmt: skip
    assert_user_error(r, "--seeds 10", "train.seed")
    assert not (tmp_path / "res").exists()


def test_unknown_section_in_a_grid_is_one_error(make_preset, tmp_path):
    for grid, needle in (("nosuch.key=1,2", "nosuch: unknown key"), ("name.x=1,2", "name")):
        r = n2n("sweep", make_preset(), "--grid", grid, "--results-dir", tmp_path / "res")
        assert_user_error(r, f"--grid {grid.partition('=')[0]}", needle)
    assert not (tmp_path / "res").exists()


# ---------------------------------------------------------------------------
# 7, 8. a FIFO or folder where a file is read


def test_fifo_at_sweep_json_never_hangs(tmp_path):
    sweep = _fake_sweep(tmp_path / "results")
    os.mkfifo(sweep / "sweep.json")
    for verb in ("status", "cancel", "resume"):
        assert_user_error(n2n("sweep", verb, sweep, timeout=60), "sweep.json", "FIFO")


def test_folder_at_a_download_is_refused(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(UserError, match="x.png: is a folder"):
        download(Remote("http://127.0.0.1:9/x.png", "0" * 64), tmp_path / "x.png")
    (tmp_path / "y.png.part").mkdir()
    with pytest.raises(UserError, match=r"y.png.part: is a folder"):
        download(Remote("http://127.0.0.1:9/y.png", "0" * 64), tmp_path / "y.png")


@pytest.mark.parametrize("where", ["file-fifo", "file-folder", "part-fifo"])
def test_special_file_where_a_download_lands_is_one_error(where, tmp_path):
    name = CATALOGUE["kodak24"].files[0].file_name
    target = tmp_path / "out" / ".downloads" / "kodak24" / name
    target.parent.mkdir(parents=True)
    if where == "part-fifo":
        target = target.with_name(name + ".part")
    if where.endswith("fifo"):
        os.mkfifo(target)
    else:
        target.mkdir()
    proxy = "http://127.0.0.1:9"  # offline for sure: the check comes before any request
    env = {"http_proxy": proxy, "https_proxy": proxy, "no_proxy": ""}
    env |= {k.upper(): v for k, v in env.items()}
    r = n2n("dataset", "fetch", "kodak24", "--out", tmp_path / "out", env=env, timeout=60)
    assert_user_error(r, target.name, "FIFO" if where.endswith("fifo") else "folder")


def test_a_results_dir_that_is_not_there_is_a_typo_not_an_empty_table(tmp_path):
    for where, why in ((tmp_path / "nope", "no such folder"), (Path(os.devnull), "not a folder")):
        r = n2n("runs", "--results-dir", where)
        assert_user_error(r, "--results-dir", str(where), why)


@pytest.mark.parametrize("speed", ["1e-308", "0.0001", "inf"])
def test_replay_speed_that_would_never_end_is_refused(tiny_run, speed):
    r = n2n("replay", tiny_run, "--speed", speed, timeout=60)
    assert_user_error(r, "--speed", speed)
