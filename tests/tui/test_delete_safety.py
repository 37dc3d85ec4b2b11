"""The Runs screen's delete asks the engine (runs.folders.delete_run), which decides under
the run's lock: a run whose lock another process holds, or a queued point of a sweep
whose scheduler lives, is not deleted, and the modal says why. The Sweeps screen shows a
point whose folder is not its own as refused, and never opens that folder."""

from __future__ import annotations

from pathlib import Path

from helpers.sweep_safety import LIVE_SCHEDULER, LiveRun, edit_sweep, make_sweep
from tui_helpers import SIZE, text_of, wait_for

from n2n_core.sweeps.store import read_sweep
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.sweeps import SweepsScreen
from n2n_tui.widgets.common import ConfirmModal, ErrorModal, RunsTable


def _keys(table: RunsTable) -> list[str]:
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


async def _delete(app, pilot, name: str) -> None:
    table = app.screen.query_one(RunsTable)
    await wait_for(pilot, lambda: name in _keys(table))
    table.move_cursor(row=_keys(table).index(name))
    await pilot.press("d")
    assert isinstance(app.screen, ConfirmModal)
    await pilot.press("y")


def _modal_text(app) -> str:
    return " ".join(text_of(w) for w in app.screen.query(".dialog-body"))


async def test_delete_refuses_a_run_whose_lock_another_process_holds(make_app, results: Path):
    run = results / "00002-crashy"  # the row says failed: a stale row is all the TUI has
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        with LiveRun(run, record=False) as live:  # e.g. `n2n-core resume` in another terminal
            await _delete(app, pilot, run.name)
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
            assert "Not deleted" in app.screen.title_text
            assert f"pid {live.proc.pid}" in _modal_text(app)
            assert (run / "metrics.jsonl").exists() and live.alive()
        await pilot.press("escape")
        await _delete(app, pilot, run.name)  # nobody holds it now
        await wait_for(pilot, lambda: not run.exists())


async def test_delete_refuses_a_queued_point_of_a_live_sweep(make_app, results: Path, make_preset):
    sweep = make_sweep(make_preset(), results)
    point = results / read_sweep(sweep).points[0].run
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        with LiveRun(sweep, script=LIVE_SCHEDULER):
            await _delete(app, pilot, point.name)
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
            assert "scheduler is running" in _modal_text(app)
            assert (point / "run.json").exists()
        await pilot.press("escape")
        await _delete(app, pilot, point.name)
        await wait_for(pilot, lambda: not point.exists())


async def test_sweeps_screen_shows_a_foreign_point_as_refused(make_app, results: Path, make_preset):
    sweep = make_sweep(make_preset(), results)
    # The point names a recorded run that belongs to no sweep (and has a best PSNR).
    edit_sweep(sweep, lambda d: d["points"][0].update(run="00000-gauss-baseline"))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        await pilot.press("w")
        screen = app.screen
        assert isinstance(screen, SweepsScreen)
        points = screen.query_one("#points-table", RunsTable)
        await wait_for(pilot, lambda: points.row_count == 1)
        cells = [str(c) for c in points.get_row("00000-gauss-baseline")]
        assert any("refused" in c for c in cells)
        assert not any("31.42" in c for c in cells)  # nothing of that folder is shown
        points.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, DashboardScreen)
        assert any("belongs to no sweep" in str(n.message) for n in app._notifications)
