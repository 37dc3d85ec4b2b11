"""The summary cache: a listing of ended runs that reads no records, never trusted over them.

What a user relies on: `n2n-core runs` says the same with the cache as without
it, whatever changed in a run folder since it was cached (an evaluation
appended, a tag, a resume, a rewrite of the same size); a damaged, foreign or
planted cache file is ignored, never followed, and rebuilt; a running run is
never cached.
"""

from __future__ import annotations

import json
import os

from helpers.fake_runs import finished_runs

from n2n_core.runs.cache import CACHE_NAME, SummaryCache, values_from_json, values_to_json
from n2n_core.runs.records import EvalRecord, TrainRecord
from n2n_core.runs.state import run_state
from n2n_core.runs.summary import list_runs


def listing(results, cache: bool) -> list[dict]:
    return [r.to_json() for r in list_runs(results, cache=cache)]


def test_the_cached_listing_is_the_uncached_one_and_reads_no_records(tmp_path, monkeypatch):
    finished_runs(tmp_path, 5, 30)
    want = listing(tmp_path, cache=False)
    assert listing(tmp_path, cache=True) == want  # first: reads and writes the cache
    assert (tmp_path / CACHE_NAME).is_file()

    import n2n_core.runs.cache as cache_mod

    def no_reading(*a, **k):
        raise AssertionError("a cached run's records were read")

    monkeypatch.setattr(cache_mod, "run_state", no_reading)
    assert listing(tmp_path, cache=True) == want


def test_any_change_to_a_run_reads_it_again(tmp_path):
    finished_runs(tmp_path, 3, 30)
    listing(tmp_path, cache=True)
    run = sorted(tmp_path.glob("0*"))[1]
    metrics = run / "metrics.jsonl"
    # An evaluation appended to a finished run (what `n2n-core evaluate` does).
    with open(metrics, "a") as f:
        f.write(
            EvalRecord(
                step=2800,
                snapshot="final.safetensors",
                dataset="kodak",
                noise="gaussian",
                level=25.0,
                psnr=31.5,
            ).to_line()
        )
    got = listing(tmp_path, cache=True)
    assert got == listing(tmp_path, cache=False)
    assert got[1]["eval_psnr"] == 31.5
    # A rewrite to the same size with the same modification time (a hostile or unlucky
    # one): the inode or change time still tells.
    st = os.stat(metrics)
    data = metrics.read_bytes().replace(b'"loss":0.0', b'"loss":0.9', 1)
    assert len(data) == st.st_size
    tmp = metrics.with_name("m.tmp")
    tmp.write_bytes(data)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, metrics)
    assert listing(tmp_path, cache=True) == listing(tmp_path, cache=False)
    # A tag edits run.json.
    info = json.loads((run / "run.json").read_text())
    info["tags"] = ["best"]
    (run / "run.json").write_text(json.dumps(info))
    assert listing(tmp_path, cache=True)[1]["tags"] == ["best"]


def test_a_damaged_or_planted_cache_is_ignored_and_never_followed(tmp_path):
    finished_runs(tmp_path, 2, 20)
    want = listing(tmp_path, cache=False)
    cache = tmp_path / CACHE_NAME
    for junk in (b"", b"{", b"[]", b'{"version": 1, "runs": []}', b'{"version": 99, "runs": {}}'):
        cache.write_bytes(junk)
        assert listing(tmp_path, cache=True) == want
    # Entries of the wrong shape: each one ignored, the run read from its files.
    good = json.loads(cache.read_text())
    name = sorted(good["runs"])[0]
    good["runs"][name]["values"]["step"] = "lots"
    good["runs"][name]["values"]["best_psnr"] = 99.0
    cache.write_text(json.dumps(good))
    assert listing(tmp_path, cache=True) == want
    # A symlink planted where the cache goes: not read through, not written through.
    cache.unlink()
    target = tmp_path.parent / "elsewhere.json"
    target.write_text("precious")
    cache.symlink_to(target)
    assert listing(tmp_path, cache=True) == want
    assert target.read_text() == "precious"


def test_a_running_run_is_never_cached(tmp_path):
    finished_runs(tmp_path, 1, 10)
    run = next(tmp_path.glob("0*"))
    info = json.loads((run / "run.json").read_text())
    info.update(status="running", pid=os.getpid())
    (run / "run.json").write_text(json.dumps(info))
    listing(tmp_path, cache=True)
    assert run.name not in SummaryCache(tmp_path).entries
    with open(run / "metrics.jsonl", "a") as f:
        f.write(TrainRecord(step=99_999, time=2e9, loss=0.1, lr=1e-4, ms_per_step=30.0).to_line())
    assert listing(tmp_path, cache=True)[0]["step"] == 99_999


def test_values_survive_the_round_trip(tmp_path):
    finished_runs(tmp_path, 1, 40)
    run = next(tmp_path.glob("0*"))
    with open(run / "metrics.jsonl", "a") as f:
        f.write(
            EvalRecord(
                step=1,
                snapshot="a.safetensors",
                dataset="d",
                level=15.0,
                psnr=30.0,
                baselines={"bm3d": 29.0},
            ).to_line()
        )
    v = run_state(run).copy_values()
    back = values_from_json(json.loads(json.dumps(values_to_json(v))))
    assert back is not None
    for k in (
        "step",
        "best_psnr",
        "best_step",
        "psnr",
        "input_psnr",
        "ms_per_step",
        "loss",
        "records",
    ):
        assert getattr(back, k) == getattr(v, k), k
    assert back.eval_psnr == v.eval_psnr == 30.0
    assert back.evals[0].baseline("bm3d") == 29.0
