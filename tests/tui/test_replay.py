"""Replay: Escape goes back (never quits unasked), the header tells the replayed moment,
and the timeline is the run's own."""

from __future__ import annotations

from pathlib import Path

from tui_helpers import SIZE, wait_for

from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.runs import RunsScreen


async def test_escape_in_a_replay_goes_back_to_the_run_list(make_app, results: Path):
    app = make_app(replay=Path("results/00000-gauss-baseline"), speed=0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert app.is_running
        await wait_for(pilot, lambda: app.rows_loaded)
        assert len(app.rows) == 4
