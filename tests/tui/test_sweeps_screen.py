"""Sweeps screen, sortable tables, the run filter's tags and key=value, launching a sweep."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Button, Input
from tui_helpers import SIZE, wait_for

from n2n_core.runs.info import update_run_info
from n2n_core.sweeps.store import Point, Sweep, write_sweep
from n2n_tui.models.procs import LaunchSpec
from n2n_tui.models.sorting import SortOrder
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.runs import RunsScreen
from n2n_tui.screens.sweeps import SweepsScreen
from n2n_tui.widgets.common import ConfirmModal, InputModal, RunsTable


def _keys(table: RunsTable) -> list[str]:
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


def _cells(table: RunsTable, key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]


def make_sweep(results: Path, status: str = "failed") -> Path:
    """A finished point, a running one and a failed one (the recorded runs)."""
    sweep_dir = results / "sweeps" / "00000-lr"
    (sweep_dir / "points").mkdir(parents=True)
    points = [
        Point(
            0, {"train.lr": 0.0003, "noise.type": "gaussian"}, "00000-gauss-baseline", "finished"
        ),
        Point(1, {"train.lr": 0.001, "noise.type": "poisson"}, "00001-poisson-8gpu", "running"),
        Point(2, {"train.lr": 0.003, "noise.type": "poisson"}, "00002-crashy", "failed"),
    ]
    for p in points:  # a point's run folder names its sweep back, as create_sweep writes it
        update_run_info(results / p.run, sweep="sweeps/00000-lr", params=p.params)
    sweep = Sweep(
        name="lr",
        preset="presets/quickstart.yaml",
        base={},
        grid={"train.lr": [0.0003, 0.001, 0.003], "noise.type": ["gaussian", "poisson"]},
        sets=[],
        seeds=1,
        executor="local",
        slots=None,
        devices=None,
        points=points,
        status=status,
        message="1 of 3 points failed",
    )
    write_sweep(sweep_dir, sweep)
    return sweep_dir


def make_search_sweep(results: Path) -> Path:
    """A finished TPE search of 8 trials: 5 completed, 2 pruned, 1 failed, importances
    computed. Its points' run folders are not there (what sweep.json says is shown)."""
    sweep_dir = results / "sweeps" / "00001-search"
    (sweep_dir / "points").mkdir(parents=True)
    values = [24.1, None, 26.3, 25.0, None, 27.9, 27.2, None]
    status = ["finished", "pruned", "finished", "finished", "pruned", "finished", "finished"]
    status.append("failed")
    points = []
    for i, (v, st) in enumerate(zip(values, status, strict=True)):
        params = {"train.lr": round(1e-4 * (i + 1) ** 1.7, 7), "train.batch": 1 + i % 3}
        value = v if st == "finished" else (21.5 + i / 10 if st == "pruned" else None)
        points.append(Point(i, params, f"{i + 10:05d}-search-t{i:03d}", st, trial=i, value=value))
    sweep = Sweep(
        name="search",
        preset="presets/quickstart.yaml",
        base={},
        grid={},
        sets=[],
        seeds=1,
        executor="local",
        slots=None,
        devices=None,
        points=points,
        status="finished",
        message="8 points ended: 5 finished, 2 pruned, 1 failed",
        search={
            "sampler": "tpe",
            "trials": 8,
            "space": {"train.lr": "loguniform(1e-4,1e-2)", "train.batch": "int(1,3)"},
            "objective": "best_psnr",
            "prune": "median",
            "importances": {"train.lr": 0.83, "train.batch": 0.17},
        },
    )
    write_sweep(sweep_dir, sweep)
    return sweep_dir


async def test_search_sweep_shows_best_curve_pruned_and_importances(make_app, results):
    make_search_sweep(results)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#points-table").row_count == 8)
        info = str(screen.query_one("#search-info").render())
        assert "best: trial 5 27.90 dB" in info
        assert "importance: train.lr 0.83  train.batch 0.17" in info
        assert "×" in info  # the pruned trials, marked on the curve
        points = screen.query_one("#points-table", RunsTable)
        assert "pruned" in " ".join(_cells(points, "00011-search-t001"))
        assert "8/8" in " ".join(_cells(screen.query_one("#sweeps-table"), "00001-search"))
        assert screen.query_one("#search-chart").display  # room for the chart here


def test_sort_order_puts_missing_values_last():
    rows = [{"v": 2.0}, {"v": None}, {"v": 10.0}]
    order = SortOrder()
    order.toggle("v")
    assert order.apply(rows, lambda r, c: r[c]) == [{"v": 2.0}, {"v": 10.0}, {"v": None}]
    order.toggle("v")
    assert order.apply(rows, lambda r, c: r[c]) == [{"v": 10.0}, {"v": 2.0}, {"v": None}]
    assert order.label("v", "Best") == "Best ▼"


def test_launch_spec_starts_a_sweep_or_queues():
    spec = LaunchSpec(Path("p.yaml"), name="lr", nproc=4, grid=["train.lr=1e-3,3e-4"])
    assert spec.args() == [
        "sweep",
        "p.yaml",
        "--grid",
        "train.lr=1e-3,3e-4",
        "--set",
        "runtime.nproc=4",
        "--results-dir",
        "results",
        "--name",
        "lr",
        "--detach",
    ]
    queued = LaunchSpec(Path("p.yaml"), queue=True)
    assert queued.args()[:2] == ["sweep", "p.yaml"] and "--grid" not in queued.args()


async def test_sweeps_screen_points_sort_and_open(make_app, results: Path):
    sweep_dir = make_sweep(results)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        await pilot.press("w")
        screen = app.screen
        assert isinstance(screen, SweepsScreen)
        sweeps = screen.query_one("#sweeps-table", RunsTable)
        points = screen.query_one("#points-table", RunsTable)
        await wait_for(pilot, lambda: _keys(sweeps) == ["00000-lr"] and points.row_count == 3)
        row = _cells(sweeps, "00000-lr")
        assert row[1] == "lr" and row[3] == "2/3"  # finished + failed of 3
        # One column per grid key, then status and PSNR.
        labels = [str(c.label) for c in points.columns.values()]
        assert labels[:3] == ["#", "train.lr", "noise.type"]
        assert _cells(points, "00000-gauss-baseline")[1:3] == ["0.0003", "gaussian"]
        assert "31.42" in _cells(points, "00000-gauss-baseline")
        # Sort by best PSNR, highest first (a missing value stays last).
        screen.point_order.column, screen.point_order.reverse = "best", True
        screen._resort_points()
        await pilot.pause()
        desc = _keys(points)
        assert desc[0] == "00000-gauss-baseline"
        screen.point_order.reverse = False
        screen._resort_points()
        await pilot.pause()
        assert _keys(points) == desc[::-1]
        # enter on a point opens that run's dashboard.
        points.focus()
        points.move_cursor(row=_keys(points).index("00002-crashy"))
        await pilot.press("enter")
        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.run_dir.resolve() == sweep_dir.parent.parent / "00002-crashy"


async def test_runs_filter_tags_keys_and_sort(make_app, results: Path):
    (results / "00000-gauss-baseline" / "preset.yaml").write_text("noise: {type: gaussian}\n")
    (results / "00001-poisson-8gpu" / "preset.yaml").write_text("noise: {type: poisson}\n")
    info = json.loads((results / "00002-crashy" / "run.json").read_text())
    (results / "00002-crashy" / "run.json").write_text(json.dumps({**info, "tags": ["flaky"]}))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one(RunsTable)
        await pilot.press("slash", *"noise.type=poisson")
        assert _keys(table) == ["00001-poisson-8gpu"]
        screen.query_one("#runs-filter", Input).value = "+flaky"
        await pilot.pause()
        assert _keys(table) == ["00002-crashy"]
        screen.query_one("#runs-filter", Input).value = ""
        await pilot.press("escape")
        # o sorts by the next column; Best is the 5th sortable one (id, name, status, step, best).
        for _ in range(5):
            await pilot.press("o")
        assert screen.order.column == "best"
        assert _keys(table)[0] == "00001-poisson-8gpu" or _keys(table)[-1] == "00003-orphan"
        best = [app.rows[[r.path.name for r in app.rows].index(k)].best_psnr for k in _keys(table)]
        known = [b for b in best if b is not None]
        assert known == sorted(known) and best[len(known) :] == [None] * (len(best) - len(known))
        # t edits the tags of the run under the cursor, through run.json's one writer.
        table.move_cursor(row=_keys(table).index("00000-gauss-baseline"))
        await pilot.press("t")
        assert isinstance(app.screen, InputModal)
        app.screen.query_one(Input).value = "best paper"
        await pilot.press("enter")
        run_json = results / "00000-gauss-baseline" / "run.json"
        await wait_for(
            pilot, lambda: json.loads(run_json.read_text()).get("tags") == ["best", "paper"]
        )


async def test_stopping_a_sweep_asks_in_words(make_app, results: Path):
    make_sweep(results, status="running")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        await pilot.press("w")
        sweeps = app.screen.query_one("#sweeps-table", RunsTable)
        await wait_for(pilot, lambda: _keys(sweeps) == ["00000-lr"])
        await pilot.press("x")
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        labels = [str(b.label) for b in modal.query(Button)]
        assert labels == ["Stop the sweep (y)", "Keep it running (n)"]
        await pilot.press("n")
        assert isinstance(app.screen, SweepsScreen)


async def test_tab_down_enter_opens_a_point_and_cursors_stay_put(make_app, results: Path):
    import shutil

    sweep_dir = make_sweep(results)
    shutil.copytree(sweep_dir, sweep_dir.parent / "00001-again")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        await pilot.press("w")
        screen = app.screen
        sweeps = screen.query_one("#sweeps-table", RunsTable)
        points = screen.query_one("#points-table", RunsTable)
        await wait_for(pilot, lambda: sweeps.row_count == 2 and points.row_count == 3)
        await pilot.press("down")  # the second sweep: 00000-lr
        await pilot.press("tab", "down", "down")
        assert app.focused is points and points.cursor_row == 2
        # Switching tables keeps both cursors.
        await pilot.press("shift+tab")
        assert app.focused is sweeps and sweeps.current_key() == "00000-lr"
        await pilot.press("up")  # the other sweep, then back: its point is still chosen
        await pilot.pause()
        await pilot.press("down", "tab")
        await pilot.pause()
        assert app.focused is points and points.cursor_row == 2
        await pilot.press("enter")  # the first enter opens it
        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.run_dir.name == points.current_key()
