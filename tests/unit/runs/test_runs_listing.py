"""What ``runs`` and ``export`` list: a run's Eval is its best snapshot at one noise level
(its validation level unless asked), named in the header, never a mean over levels; a
filter on a key that is no preset key says so."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cli_helpers import assert_user_error, n2n_in_process

from n2n_core.runs.export import markdown
from n2n_core.runs.folders import allocate_run_dir
from n2n_core.runs.info import update_run_info
from n2n_core.runs.summary import summarize_run
from n2n_core.runs.writer import MetricsWriter


def make_run(results: Path, name: str, sigma: float, cells: dict[float, float]) -> Path:
    """A finished gaussian run validated at ``sigma``, evaluated at each level of ``cells``."""
    d = allocate_run_dir(results, name)
    (d / "preset.yaml").write_text(
        f"name: {name}\nnoise: {{type: gaussian, val_sigma: {sigma}}}\ntrain: {{steps: 10}}\n"
    )
    update_run_info(d, status="finished", total_steps=10, started=time.time(), exit_code=0)
    with MetricsWriter(d / "metrics.jsonl") as w:
        w.train(10, 0.1, 1e-3, 5.0)
        w.val(10, 30.0, 20.0, "val", 3, None)
        for level, psnr in cells.items():
            w.eval(10, "final.safetensors", "kodak", "gaussian", level, psnr, 20.0, 3, {}, {}, True)
    return d


def test_eval_is_the_validation_level_not_a_mean_over_levels(tmp_path):
    # The report's case: evaluated at sigma 15 and 25, validated at 25.
    d = make_run(tmp_path, "two-levels", 25, {15: 29.36, 25: 26.49})
    s = summarize_run(d)
    assert (s.eval_psnr, s.eval_noise, s.eval_level) == (26.49, "gaussian", 25.0)
    assert s.at_level(15).eval_psnr == 29.36
    assert s.at_level(50).eval_psnr is None  # no cell at that level: no score, not another's
    js = s.to_json()
    assert (js["eval_psnr"], js["eval_level"], js["eval_noise"]) == (26.49, 25.0, "gaussian")


def test_runs_names_the_level_in_its_header_and_takes_another(tmp_path):
    make_run(tmp_path, "two-levels", 25, {15: 29.36, 25: 26.49})
    make_run(tmp_path, "one-level", 25, {25: 25.60})
    out = n2n_in_process("runs", "--results-dir", str(tmp_path)).out
    assert "eval dB σ25" in out
    assert "26.49" in out and "25.60" in out and "27.93" not in out
    res = n2n_in_process("runs", "--results-dir", str(tmp_path), "--eval-level", "15", "--json")
    by = {r["name"]: r for r in json.loads(res.out)["runs"]}
    assert by["two-levels"]["eval_psnr"] == 29.36 and by["two-levels"]["eval_level"] == 15
    assert by["one-level"]["eval_psnr"] is None


def test_runs_at_different_levels_name_the_level_in_each_cell(tmp_path):
    a = make_run(tmp_path, "at25", 25, {25: 26.49})
    b = make_run(tmp_path, "at50", 50, {50: 22.10})
    text = markdown([summarize_run(a), summarize_run(b)])
    assert "eval PSNR (dB) (level)" in text
    assert "26.49 σ25" in text and "22.10 σ50" in text
    same = markdown([summarize_run(a)])
    assert "eval PSNR (dB) at σ25" in same
    out = n2n_in_process("export", str(a), str(b), "--markdown", "--eval-level", "25").out
    assert "at σ25" in out and "26.49" in out


def test_where_with_an_unknown_key_names_it(tmp_path):
    make_run(tmp_path, "a", 25, {})
    res = n2n_in_process("runs", "--results-dir", str(tmp_path), "--where", "noise.typo=x")
    assert_user_error(res, "--where noise.typo=x: noise.typo: unknown key")
    assert res.out == ""
    for fine in ("noise.type=gaussian", "noise.val_sigma=25", "note=x", "slurm.extra.qos=x"):
        ok = n2n_in_process("runs", "--results-dir", str(tmp_path), "--where", fine)
        assert ok.code == 0, (fine, ok.err)
