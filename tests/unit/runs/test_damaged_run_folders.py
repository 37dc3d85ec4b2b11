"""Damaged run folders and run data that looks like markup: listed, replayed, never fatal."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_user_error, n2n_in_process
from helpers.bad_files import DAMAGED_RUN_JSON, damaged_results, make_bad_preset

from n2n_core.errors import UserError


def test_runs_and_replay_survive_damaged_run_folders(tmp_path):
    res = tmp_path / "results"
    a = res / "00000-nojson"
    a.mkdir(parents=True)
    (a / "metrics.jsonl").write_text(
        '{"kind":"train","step":5,"loss":0.1}\ngarbage\n{"kind":"val","step":5,"psnr":25.5,"input_psnr":20.1}\n{"kind":"tr'
    )
    b = res / "00001-badjson"
    b.mkdir()
    (b / "run.json").write_text("{not json")
    (b / "metrics.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    r = n2n_in_process("runs", "--results-dir", res, "--json")
    assert r.code == 0, r.err
    import json

    runs = {x["name"]: x for x in json.loads(r.out)["runs"]}
    assert runs["nojson"]["best_psnr"] == 25.5 and runs["nojson"]["status"] == "no run.json"
    # A damaged run.json is told apart from a missing one (the TUI says the same).
    assert runs["badjson"]["step"] == 0 and runs["badjson"]["status"] == "corrupt run.json"
    for d in (a, b):
        r = n2n_in_process("replay", d, "--speed", "0")
        assert r.code == 0 and "Traceback" not in r.err
    assert_user_error(n2n_in_process("replay", tmp_path / "nope"), "nope")
    assert_user_error(n2n_in_process("resume", a), "preset.yaml")


def test_runs_list_survives_every_damaged_run_folder(tmp_path):
    res = damaged_results(tmp_path)
    r = n2n_in_process("runs", "--results-dir", res, "--json")
    assert r.code == 0, r.err
    runs = {x["name"]: x for x in json.loads(r.out)["runs"]}  # strict JSON: no NaN
    assert set(runs) == {*DAMAGED_RUN_JSON, "[bold red]evil", "good"}
    assert runs["good"]["status"] == "finished"
    assert runs["wrong-types"]["status"] == "unknown" and runs["wrong-types"]["world_size"] == 1
    assert all(x["best_psnr"] == 25.5 for k, x in runs.items() if k in DAMAGED_RUN_JSON)
    r = n2n_in_process("runs", "--results-dir", res)
    assert r.code == 0 and not r.err, r.err
    assert "[bold red]evil" in r.out and "00040" in r.out


@pytest.mark.parametrize("speed", ["0", "1000"])
def test_replay_survives_damaged_runs_and_prints_no_markup(tmp_path, speed):
    res = damaged_results(tmp_path)
    for d in sorted(res.iterdir()):
        r = n2n_in_process("replay", d, "--speed", speed)
        assert r.code == 0 and not r.err, (d, r.err)
        if speed != "0" and (d / "metrics.jsonl").exists():
            assert "[/bold] boom [link=file:///etc/passwd]x" in r.out
    r = n2n_in_process("replay", res / "00031-[bold red]evil", "--speed", "0")
    assert "00031-[bold red]evil" in r.out


def test_tui_tables_show_cells_as_plain_text():
    from rich.text import Text

    from n2n_tui.widgets.common.table import _plain

    cell = _plain("00031-[bold red]evil")
    assert isinstance(cell, Text) and cell.plain == "00031-[bold red]evil" and not cell.spans
    styled = Text("x", style="red")
    assert _plain(styled) is styled


def test_special_files_in_run_folders_do_not_hang_readers(tmp_path):
    import os

    from n2n_core.runs.tail import MetricsTail

    res = tmp_path / "results"
    d = res / "00000-fifos"
    d.mkdir(parents=True)
    os.mkfifo(d / "run.json")
    os.mkfifo(d / "metrics.jsonl")
    z = res / "00001-devices"
    z.mkdir()
    (z / "run.json").symlink_to("/dev/zero")
    (z / "metrics.jsonl").symlink_to("/dev/zero")
    r = n2n_in_process("runs", "--results-dir", res, "--json", timeout=60)
    assert r.code == 0, r.err
    assert {x["name"] for x in json.loads(r.out)["runs"]} == {"fifos", "devices"}
    for run in (d, z):
        assert n2n_in_process("replay", run, "--speed", "0", timeout=60).code == 0
        assert MetricsTail(run / "metrics.jsonl").read_new().items == []


def test_hostile_preset_in_a_run_folder_does_not_hang_a_filtered_listing(tmp_path):
    import os

    res = tmp_path / "results"
    for i, kind in enumerate(("fifo", "alias-bomb", "duplicate-top-key")):
        d = res / f"{i:05d}-{kind}"
        d.mkdir(parents=True)
        p, _ = make_bad_preset(kind, tmp_path)
        os.replace(p, d / "preset.yaml")
    (res / "00009-dev").mkdir()
    (res / "00009-dev" / "preset.yaml").symlink_to("/dev/zero")
    r = n2n_in_process(
        "runs", "--results-dir", res, "--where", "train.steps=1", "--json", timeout=60
    )
    assert r.code == 0, r.err
    assert json.loads(r.out)["runs"] == []


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_dir(tmp_path, make_preset):
    res = tmp_path / "ro"
    res.mkdir()
    res.chmod(0o555)
    try:
        r = n2n_in_process("run", make_preset(), "--results-dir", res)
        assert_user_error(r, str(res))
    finally:
        res.chmod(0o755)


def test_unwritable_results_dir_in_process(tmp_path, make_preset, monkeypatch):
    """The same as a read-only or immutable folder, for CI that runs as root."""
    import errno
    import pathlib

    from n2n_core.config.preset import load_preset
    from n2n_core.runs.folders import prepare_run

    res = tmp_path / "res"
    res.mkdir()
    real = pathlib.Path.mkdir

    def mkdir(self, *a, **k):
        if self.parent == res:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    with pytest.raises(UserError, match="results directory .*Read-only"):
        prepare_run(load_preset(make_preset()), res, None, ["test"])
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        prepare_run(load_preset(make_preset()), afile, None, ["test"])
