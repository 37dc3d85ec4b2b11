"""Snapshot tests (pytest-textual-snapshot) of each screen on the recorded run folders.

The clock is frozen, cursor blink is off (headless), and every screen waits for
its data before the picture is taken. Update with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input
from tui_helpers import SIZE, wait_for

from n2n_tui.screens.compare import CompareScreen
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.launch import LaunchScreen
from n2n_tui.screens.snapshots import SnapshotsScreen


async def _loaded(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.rows_loaded)


async def _dashboard(pilot, run, step) -> None:
    pilot.app.push_screen(DashboardScreen(run))
    await pilot.pause()
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.feed.values.step == step)
    await pilot.pause(0.4)


def test_runs_screen(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_loaded)


def test_dashboard_running(snap_compare, make_app, results):
    async def before(pilot):
        await _dashboard(pilot, Path("results/00001-poisson-8gpu"), 123400)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_dashboard_damaged_failed_run(snap_compare, make_app, results):
    async def before(pilot):
        await _dashboard(pilot, Path("results/00002-crashy"), 2600)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_replay_final_state(snap_compare, make_app, results):
    async def before(pilot):
        await wait_for(pilot, lambda: pilot.app.screen.replay.done)
        await pilot.pause(0.4)

    app = make_app(replay=Path("results/00000-gauss-baseline"), speed=0)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_preset_editor_with_an_error(snap_compare, make_app):
    async def before(pilot):
        await pilot.press("p")
        await wait_for(pilot, lambda: pilot.app.screen.entries)
        pilot.app.screen.query_one("RunsTable").move_cursor(row=2)
        await pilot.press("e")
        await pilot.pause()
        pilot.app.screen.query_one("#f-train-crop", Input).value = "50"
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_launch_screen(snap_compare, make_app, presets):
    async def before(pilot):
        pilot.app.push_screen(LaunchScreen(Path("presets/poisson-long.yaml")))
        await pilot.pause()
        pilot.app.screen.query_one("#launch-overrides", Input).value = "train.steps=1000"
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_snapshots_screen(snap_compare, make_app, results):
    async def before(pilot):
        pilot.app.push_screen(SnapshotsScreen(Path("results/00000-gauss-baseline")))
        await wait_for(pilot, lambda: len(pilot.app.screen.snaps) == 4)
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_compare_screen(snap_compare, make_app, results):
    async def before(pilot):
        runs = [Path("results/00000-gauss-baseline"), Path("results/00001-poisson-8gpu")]
        pilot.app.push_screen(CompareScreen(runs))
        await pilot.pause()
        screen = pilot.app.screen
        await wait_for(pilot, lambda: all(f.values.val_records for f in screen.feeds))
        await pilot.pause(0.8)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)
