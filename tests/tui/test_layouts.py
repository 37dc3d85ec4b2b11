"""Every screen at 80x24 and at 200x50 (snapshots), and what each keeps at 80x24.

At 80 columns tables drop columns in their stated order (the Runs table: precision,
device, ms/step, tags and note, started, last), side-by-side panes go one under the
other and no footer key is cut; at 24 rows panes take the rows they need and the
charts keep the rest. At 200x50 the wide columns and the lower panes take the room.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from textual.widgets import Footer
from tui_helpers import FIXTURES, T0, wait_for

from n2n_core.runs.info import update_run_info
from n2n_core.runs.records import EvalRecord
from n2n_core.runs.writer import MetricsWriter
from n2n_tui.screens.compare import CompareScreen
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.launch import LaunchScreen
from n2n_tui.screens.pictures import PicturesScreen
from n2n_tui.screens.snapshots import SnapshotsScreen
from n2n_tui.widgets.common import RunsTable
from n2n_tui.widgets.images import SamplePanel

SIZES = {"80x24": (80, 24), "200x50": (200, 50)}
SAMPLED = Path("results/00004-sampled")


@pytest.fixture
def world(results: Path) -> Path:
    """The recorded runs, a sampled run, a sweep, a note, a tag and an evaluation."""
    from test_sweeps_screen import make_sweep

    shutil.copytree(FIXTURES / "pictures" / "00000-sampled", results / SAMPLED.name)
    make_sweep(results)
    for name, noise in (("00000-gauss-baseline", "gaussian"), ("00001-poisson-8gpu", "poisson")):
        preset = {"name": name[6:], "noise": {"type": noise}, "train": {"steps": 100}}
        (results / name / "preset.yaml").write_text(yaml.safe_dump(preset))
    base = results / "00000-gauss-baseline"
    update_run_info(base, note="the baseline of fig. 3", tags=["paper"])
    with MetricsWriter(base / "metrics.jsonl") as w:
        w.write(
            EvalRecord(
                step=20000,
                time=T0 + 9000,
                snapshot="final.safetensors",
                dataset="/data/kodak",
                noise="gaussian",
                level=25.0,
                psnr=31.25,
                input_psnr=20.17,
                images=24,
                baselines={"nlm": 29.5},
                best=True,
                colour_shift=0.44,
            )
        )
    return results


async def _loaded(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.rows_loaded)
    await pilot.pause(0.3)


async def _runs(pilot) -> None:
    await _loaded(pilot)


async def _dashboard(pilot) -> None:
    await _loaded(pilot)
    pilot.app.push_screen(DashboardScreen(Path("results/00001-poisson-8gpu")))
    await pilot.pause()
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.feed.values.step == 123400)
    await pilot.pause(0.5)


async def _sampled(pilot, keys: str = "") -> None:
    await _loaded(pilot)
    pilot.app.push_screen(DashboardScreen(SAMPLED, replay_speed=0))
    await pilot.pause()
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.replay.done)
    await wait_for(pilot, lambda: screen.query_one(SamplePanel).has_samples)
    for key in keys:
        await pilot.press(key)
    await pilot.pause(0.5)


async def _machine(pilot) -> None:
    await _sampled(pilot, "m")


async def _pictures_pane(pilot) -> None:
    await _sampled(pilot, "p")


async def _replay(pilot) -> None:
    await _loaded(pilot)
    pilot.app.push_screen(DashboardScreen(Path("results/00000-gauss-baseline"), replay_speed=0))
    await pilot.pause()
    await wait_for(pilot, lambda: pilot.app.screen.replay.done)
    await pilot.pause(0.5)


async def _compare(pilot, views: int = 0) -> None:
    await _loaded(pilot)
    runs = [Path("results/00000-gauss-baseline"), Path("results/00001-poisson-8gpu")]
    pilot.app.push_screen(CompareScreen(runs))
    await pilot.pause()
    screen = pilot.app.screen
    await wait_for(pilot, lambda: all(f.values.val_records for f in screen.feeds))
    for _ in range(views):
        await pilot.press("v")
    pilot.app.clear_notifications()  # the view's name, toasted for a moment
    await pilot.pause(0.8)


async def _compare_eval(pilot) -> None:
    await _compare(pilot, 2)


async def _snapshots(pilot) -> None:
    await _loaded(pilot)
    pilot.app.push_screen(SnapshotsScreen(Path("results/00000-gauss-baseline")))
    await wait_for(pilot, lambda: len(pilot.app.screen.snaps) == 4)
    await pilot.pause(0.3)


async def _pictures(pilot) -> None:
    await _loaded(pilot)
    samples = SAMPLED / "samples"
    items = [
        ("step 1000", samples / "step-00001000-astronaut.png"),
        ("step 3000", samples / "step-00003000-astronaut.png"),
    ]
    pilot.app.push_screen(PicturesScreen("two sample strips", items))
    await pilot.pause(0.5)


async def _sweeps(pilot) -> None:
    await _loaded(pilot)
    await pilot.press("w")
    points = pilot.app.screen.query_one("#points-table", RunsTable)
    await wait_for(pilot, lambda: points.row_count == 3)
    await pilot.pause(0.3)


async def _sweeps_search(pilot) -> None:
    from test_sweeps_screen import make_search_sweep

    make_search_sweep(pilot.app.results_dir)
    await _loaded(pilot)
    await pilot.press("w")
    points = pilot.app.screen.query_one("#points-table", RunsTable)
    await wait_for(pilot, lambda: points.row_count == 8)  # the newest sweep, the search
    await pilot.pause(0.3)


async def _presets(pilot) -> None:
    await _loaded(pilot)
    await pilot.press("p")
    await wait_for(pilot, lambda: pilot.app.screen.entries)
    await pilot.pause(0.3)


async def _editor(pilot) -> None:
    await _presets(pilot)
    table = pilot.app.screen.query_one(RunsTable)
    table.move_cursor(row=table.get_row_index("quick.yaml"))
    await pilot.press("e")
    await wait_for(pilot, lambda: pilot.app.screen.query("#f-train-crop"))
    await pilot.pause(0.5)


async def _launch(pilot) -> None:
    await _loaded(pilot)
    pilot.app.push_screen(LaunchScreen(Path("presets/poisson-long.yaml")))
    await pilot.pause()
    # Two problems listed: the button must stay on screen.
    pilot.app.screen.query_one("#launch-overrides").value = "train.steps=-1 train.crop=7"
    await pilot.pause(0.3)


async def _help(pilot) -> None:
    await _loaded(pilot)
    await pilot.press("question_mark")
    await pilot.pause(0.3)


SCREENS = {
    "runs": _runs,
    "dashboard": _dashboard,
    "dashboard_samples": _sampled,
    "dashboard_machine": _machine,
    "dashboard_pictures": _pictures_pane,
    "replay": _replay,
    "compare": _compare,
    "compare_eval": _compare_eval,
    "snapshots": _snapshots,
    "pictures": _pictures,
    "sweeps": _sweeps,
    "sweeps_search": _sweeps_search,
    "presets": _presets,
    "preset_editor": _editor,
    "launch": _launch,
    "help": _help,
}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_at_size(snap_compare, make_app, world, screen, size):
    app = make_app(images="halfblock")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=SCREENS[screen])


# -- what 80x24 keeps, said in words --------------------------------------------------


def _footer_fits(app) -> None:
    footer = app.screen.query_one(Footer)
    keys = [k for k in footer.query("FooterKey")]
    assert keys and all(k.region.right <= 80 for k in keys), [str(k.render()) for k in keys]


async def test_runs_at_80_columns_drop_columns_in_their_order(make_app, world):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot)
        table = app.screen.query_one(RunsTable)
        assert table.shown_keys == ["mark", "id", "name", "status", "step", "best", "eval"]
        assert table.columns["name"].width >= 16  # type: ignore[index]
        _footer_fits(app)
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await _loaded(pilot)
        table = app.screen.query_one(RunsTable)
        assert table.shown_keys[-2:] == ["tags", "note"]
        assert table.columns["name"].width <= 40  # type: ignore[index]
        assert table.columns["note"].width > 30  # type: ignore[index]  # the room left


@pytest.mark.parametrize(
    "before", [_compare, _dashboard, _machine, _launch, _sweeps, _sweeps_search, _editor]
)
async def test_at_80x24_every_footer_key_and_pane_is_on_screen(make_app, world, before):
    app = make_app(images="halfblock")
    async with app.run_test(size=(80, 24)) as pilot:
        await before(pilot)
        _footer_fits(app)
        screen = app.screen
        if isinstance(screen, LaunchScreen):
            go = screen.query_one("#launch-go")
            assert go.region.bottom <= 23, go.region  # above the footer, problems listed
        if isinstance(screen, DashboardScreen):
            for chart in screen.query("Chart"):
                assert chart.content_size.height >= 2, chart.id
