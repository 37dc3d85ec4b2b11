"""Data never drives the terminal: every CLI table and line shows the control characters
of names, params, messages, tags, job states and preset values escaped (``\\x1b``), as
the one error line does, so an escape sequence in a file cannot retitle the window,
clear the screen or hide what is printed."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import n2n_in_process as n2n
from helpers.sweep_safety import edit_sweep, make_sweep

from n2n_core.runs.info import update_run_info
from n2n_core.sweeps.driver import SweepLog

TITLE = "\x1b]0;pwned\x07"  # OSC: set the window title
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
HIDE = "\x1b[8m"  # what follows is invisible


def _clean(text: str) -> None:
    for ch in ("\x1b", "\x07", "\x9b"):
        assert ch not in text, repr(text)
    assert "\\x1b" in text, text


def test_sweep_status_escapes_params_keys_messages_and_job_states(make_preset, tmp_path):
    sweep = make_sweep(make_preset(), tmp_path / "res", grid=("train.lr=1e-3,2e-3",))

    def change(d: dict) -> None:
        d["grid"] = {f"train.lr{HIDE}": [1], "train.lr": [1]}
        d["points"][0]["params"] = {"train.lr": f"{TITLE}0.1{CLEAR}", f"train.lr{HIDE}": 1}
        d["points"][1].update(job_id="77", job_state=f"RUNNING{CLEAR}")
        d["message"] = f"all done{TITLE}"
        d["name"] = f"s{CLEAR}"

    edit_sweep(sweep, change)
    r = n2n("sweep", "status", sweep)
    assert r.code == 0, r.err
    _clean(r.out)
    assert "pwned" in r.out and "all done" in r.out
    # --json escapes by being JSON.
    r = n2n("sweep", "status", sweep, "--json")
    assert r.code == 0 and "\x1b" not in r.out


def test_runs_table_escapes_names_devices_and_tags(tmp_path):
    res = tmp_path / "res"
    run = res / f"00000-x{TITLE}"
    run.mkdir(parents=True)
    update_run_info(
        run, status="finished", name="x", device=f"cpu{CLEAR}", tags=[f"t{HIDE}"], world_size=1
    )
    r = n2n("runs", "--results-dir", res)
    assert r.code == 0, r.err
    _clean(r.out)
    r = n2n("tag", run, "+ok")
    assert r.code == 0, r.err
    _clean(r.out)


def test_diff_escapes_preset_keys_and_values(tmp_path):
    a, b = tmp_path / "00000-a", tmp_path / "00001-b"
    for d, note in ((a, "plain"), (b, f"x{TITLE}")):
        d.mkdir()
        (d / "preset.yaml").write_text(
            json.dumps({"name": "n", "note": note, f"k{CLEAR}": note}), encoding="utf-8"
        )
        update_run_info(d, status="finished")
    r = n2n("diff", a, b)
    assert r.code == 0, r.err
    _clean(r.out)


def test_replay_escapes_event_messages(tmp_path):
    run = tmp_path / "00000-r"
    run.mkdir()
    update_run_info(run, status="finished", total_steps=1)
    event = {
        "kind": "event",
        "step": 0,
        "time": 1.0,
        "msg": f"start{TITLE}{CLEAR}",
        "level": "info",
    }
    (run / "metrics.jsonl").write_text(json.dumps(event) + "\n")
    r = n2n("replay", run, "--speed", "1000")
    assert r.code == 0, r.err
    _clean(r.out)


def test_the_scheduler_log_escapes_what_it_echoes(tmp_path, capsys):
    log = SweepLog(tmp_path, echo=True)
    log(f"point 0 (train.lr={TITLE}) started: run 00000-x{CLEAR}")
    log.close()
    _clean(capsys.readouterr().out)
    _clean((tmp_path / "scheduler.log").read_text())


def test_sweep_cancel_escapes_its_own_lines(make_preset, tmp_path):
    sweep = make_sweep(make_preset(), tmp_path / "res")
    edit_sweep(sweep, lambda d: d.update(status="cancelled", message=f"gone{TITLE}"))
    moved = Path(str(sweep) + CLEAR)
    sweep.rename(moved)
    r = n2n("sweep", "cancel", moved)
    assert r.code == 0, r.err
    _clean(r.out)
