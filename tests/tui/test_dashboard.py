"""The dashboard: what its header says about time and notes."""

from __future__ import annotations

from pathlib import Path

from tui_helpers import SIZE, T0, text_of, wait_for

from n2n_core.runs.info import update_run_info
from n2n_core.runs.records import EventRecord, TrainRecord
from n2n_core.runs.writer import MetricsWriter
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.widgets.dashboard import RunHeader


def stopped_and_resumed(results: Path) -> Path:
    """Trained 60 s, stopped an hour, resumed and trained 60 s more."""
    run = results / "00009-resumed"
    run.mkdir()
    update_run_info(
        run,
        status="finished",
        total_steps=200,
        started=T0,
        ended=T0 + 3725,
        exit_code=0,
        note="lr halved after the resume",
    )
    with MetricsWriter(run / "metrics.jsonl") as w:
        w.write(EventRecord(step=0, time=T0 + 5, msg="started: cpu x1 fp32"))
        for i in range(1, 7):
            w.write(TrainRecord(step=i * 10, time=T0 + 5 + i * 10, loss=0.1, ms_per_step=50.0))
        w.write(EventRecord(step=60, time=T0 + 65, msg="stopped by SIGTERM at step 60"))
        w.write(EventRecord(step=60, time=T0 + 3665, msg="resumed at step 60: cpu x1 fp32"))
        for i in range(7, 21):
            w.write(TrainRecord(step=i * 10, time=T0 + 3665 + (i - 6) * 60 / 14, loss=0.1))
        w.write(EventRecord(step=200, time=T0 + 3725, msg="finished in 1:00"))
    return run


async def test_after_a_stop_and_resume_the_header_gives_training_and_wall_time(
    make_app, results: Path
):
    run = stopped_and_resumed(results)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(DashboardScreen(run))
        await pilot.pause()
        header = app.screen.query_one(RunHeader)
        await wait_for(pilot, lambda: "step 200" in text_of(header))
        assert "trained 2m 00s · wall 1h 02m" in text_of(header)
        assert "“lr halved after the resume”" in text_of(header)  # the run's note
