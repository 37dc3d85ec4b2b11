"""Alerts when a run (started anywhere) finishes, fails, stops on a non-finite loss."""

from __future__ import annotations

import json
from pathlib import Path

from tui_helpers import SIZE, wait_for

from n2n_core.runs.info import RunInfo
from n2n_core.runs.state import RunValues
from n2n_core.runs.summary import RunSummary
from n2n_tui.models.alerts import AlertWatch

RUNNING = "00001-poisson-8gpu"  # running on another host: its status comes from run.json


def _row(name: str, status: str, step=0, best_psnr=None, exit_code=None, info=None) -> RunSummary:
    run_info = RunInfo.parse({"status": status, "exit_code": exit_code, **(info or {})})
    values = RunValues(step=step, best_psnr=best_psnr)
    summary = RunSummary.of(Path(name), run_info, values)
    # effective_status would ask whether a local pid lives; these rows are what a scan saw.
    return RunSummary(**{**summary.__dict__, "status": status})


def test_only_transitions_after_the_first_scan_alert():
    watch = AlertWatch()
    assert watch.update([_row("00000-a", "finished"), _row("00001-b", "running")]) == []
    assert watch.update([_row("00000-a", "finished"), _row("00001-b", "running")]) == []
    (alert,) = watch.update(
        [_row("00000-a", "finished"), _row("00001-b", "finished", step=200, best_psnr=30.123)]
    )
    assert alert.severity == "information"
    assert alert.message == "b finished at step 200, best PSNR 30.12 dB"
    # A run that appeared and failed between two scans is reported too.
    (fast,) = watch.update([_row("00001-b", "finished"), _row("00002-c", "failed", exit_code=2)])
    assert fast.severity == "error" and "c failed at step 0 (exit code 2)" in fast.message


def test_sweep_point_failure_names_the_sweep_and_its_params(tmp_path):
    watch = AlertWatch()
    info = {"sweep": "00003-lr", "params": {"train.lr": 0.01}}
    watch.update([_row("00007-lr-0", "running", info=info)])
    (alert,) = watch.update([_row("00007-lr-0", "failed", exit_code=1, info=info)])
    assert alert.title == "Sweep point failed"
    assert alert.message.startswith("sweep 00003-lr point lr-0 (train.lr=0.01) failed")
    # A queued point that fails as it starts alerts too, with run.json's reason.
    watch.update([_row("00008-lr-1", "queued", info=info)])
    reason = {**info, "reason": "runtime.device: cuda requested but no CUDA device is available"}
    (early,) = watch.update([_row("00008-lr-1", "failed", exit_code=2, info=reason)])
    assert early.message.endswith("(exit code 2): " + reason["reason"])


async def test_a_run_started_elsewhere_alerts_on_any_screen(make_app, results):
    app = make_app()
    bells = []
    async with app.run_test(size=SIZE) as pilot:
        app.bell = lambda: bells.append(1)
        await wait_for(pilot, lambda: app.rows_loaded)
        run = results / RUNNING
        with open(run / "metrics.jsonl", "a") as f:
            event = {"kind": "event", "step": 123400, "time": 1.0, "level": "error"}
            event["msg"] = "non-finite loss at step 123400; stopped, last good snapshot kept"
            f.write(json.dumps(event) + "\n")
        info = json.loads((run / "run.json").read_text())
        info.update(status="failed", exit_code=1)
        (run / "run.json").write_text(json.dumps(info))
        app.rescan()
        await wait_for(pilot, lambda: bells)
        (note,) = list(app._notifications)
        assert note.severity == "error" and not note.markup
        assert note.message == "poisson-8gpu: non-finite loss at step 123,400; run stopped"
