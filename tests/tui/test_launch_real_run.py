"""End to end: launch a real tiny run from the Launch screen and see its PSNR on the dashboard."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from textual.widgets import Input, Select
from tui_helpers import SIZE, text_of, wait_for

from n2n_tui.models.procs import core_command
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.launch import LaunchScreen
from n2n_tui.widgets.common import ConfirmModal, ErrorModal
from n2n_tui.widgets.dashboard import RunValues

REPO = Path(__file__).resolve().parents[2]
TINY = (
    "train.steps=4 train.crop=32 train.batch=1 train.val_every=2 train.log_every=1 "
    "data.val_max_images=1 data.samples=1"
)


def _engine_works() -> bool:
    try:
        p = subprocess.run(core_command() + ["--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


@pytest.mark.slow
async def test_launch_a_tiny_run_and_see_its_psnr(make_app, results: Path):
    if not _engine_works():
        pytest.skip("n2n-core does not run here")
    app = make_app(presets_dir=REPO / "presets")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        await pilot.press("l")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        screen.query_one("#launch-preset", Select).value = str(REPO / "presets" / "quickstart.yaml")
        await pilot.pause()
        screen.query_one("#launch-name", Input).value = "tiny"
        screen.query_one("#launch-overrides", Input).value = TINY
        await pilot.pause()
        assert "--set train.steps=4" in text_of(screen.query_one("#launch-command"))
        # Launching is deliberate: ctrl+l shows the exact command and asks.
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(
            pilot, lambda: isinstance(app.screen, DashboardScreen | ErrorModal), timeout=120
        )
        if isinstance(app.screen, ErrorModal):
            pytest.fail(f"launch failed: {app.screen.message}\n" + "\n".join(app.screen.lines))
        dash = app.screen
        assert dash.run_dir.name.endswith("-tiny")
        await wait_for(pilot, lambda: dash.feed.values.psnr is not None, timeout=240)

        def shown() -> bool:
            # The panel redraws on a timer: a later validation may land between a read of
            # the feed and the next redraw, so wait for them to agree.
            return f"PSNR {dash.feed.values.psnr:.2f}" in text_of(dash.query_one(RunValues))

        await wait_for(pilot, shown, timeout=30)
        await wait_for(pilot, lambda: dash.status in ("finished", "failed"), timeout=240)
        assert dash.status == "finished"
