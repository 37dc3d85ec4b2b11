"""The Runs screen: what its columns mean (Eval at one named level, notes), and what its
filter says about a key that is not a preset key."""

from __future__ import annotations

import time
from pathlib import Path

from textual.widgets import Static
from tui_helpers import SIZE, text_of, wait_for

from n2n_core.runs.folders import allocate_run_dir
from n2n_core.runs.info import update_run_info
from n2n_core.runs.writer import MetricsWriter
from n2n_tui.widgets.common import RunsTable


def evaluated_run(results: Path, name: str, sigma: float, cells: dict[float, float]) -> Path:
    d = allocate_run_dir(results, name)
    (d / "preset.yaml").write_text(
        f"name: {name}\nnoise: {{type: gaussian, val_sigma: {sigma}}}\ntrain: {{steps: 10}}\n"
    )
    update_run_info(d, status="finished", total_steps=10, started=time.time(), exit_code=0)
    with MetricsWriter(d / "metrics.jsonl") as w:
        w.train(10, 0.1, 1e-3, 5.0)
        for level, psnr in cells.items():
            w.eval(10, "final.safetensors", "kodak", "gaussian", level, psnr, 20.0, 3, {}, {}, True)
    return d


def cell(table: RunsTable, key: str, column: str) -> str:
    return str(table.get_cell(key, column))


def header(table: RunsTable, column: str) -> str:
    return str(table.columns[column].label)  # type: ignore[index]


async def test_eval_column_scores_one_level_named_in_its_header(make_app, results: Path):
    a = evaluated_run(results, "two-levels", 25, {15: 29.36, 25: 26.49})
    b = evaluated_run(results, "one-level", 25, {25: 25.60})
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded and len(app.rows) == 6)
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: cell(table, a.name, "eval") == "26.49")
        assert header(table, "eval") == "Eval σ25"
        assert cell(table, b.name, "eval") == "25.60"  # like with like, not the mean 27.93
        await pilot.press("E")  # the next level some run was evaluated at: sigma 15
        await wait_for(pilot, lambda: header(table, "eval") == "Eval σ15")
        assert cell(table, a.name, "eval") == "29.36"
        assert cell(table, b.name, "eval") == "—"
        await pilot.press("E", "E")  # back to each run's own level
        await wait_for(pilot, lambda: header(table, "eval") == "Eval σ25")


async def test_eval_column_names_the_level_per_cell_when_runs_differ(make_app, results: Path):
    a = evaluated_run(results, "at25", 25, {25: 26.49})
    b = evaluated_run(results, "at50", 50, {50: 22.10})
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded and len(app.rows) == 6)
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: cell(table, a.name, "eval") == "26.49 σ25")
        assert cell(table, b.name, "eval") == "22.10 σ50"
        assert header(table, "eval") == "Eval (level)"


async def test_filter_with_an_unknown_key_says_which(make_app, results: Path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        info = app.screen.query_one("#runs-info", Static)
        await pilot.press("slash", *"noise.typo=x")
        await wait_for(pilot, lambda: "noise.typo: unknown key" in text_of(info))
        assert "0 shown" in text_of(info)
        app.screen.query_one("#runs-filter").value = "noise.type=poisson"
        await wait_for(pilot, lambda: "unknown key" not in text_of(info))


async def test_a_runs_note_is_shown_under_the_table(make_app, results: Path):
    update_run_info(results / "00000-gauss-baseline", note="baseline for the paper\nfig. 3")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        table = app.screen.query_one(RunsTable)
        detail = app.screen.query_one("#runs-detail", Static)
        table.move_cursor(row=table.get_row_index("00000-gauss-baseline"))
        await wait_for(pilot, lambda: "note: baseline for the paper fig. 3" in text_of(detail))
        table.move_cursor(row=table.get_row_index("00002-crashy"))  # no note, no tags
        await wait_for(pilot, lambda: not detail.display)
