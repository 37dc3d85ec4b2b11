"""Compare: any metric by step or time, the config diff, evaluations side by side, export."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from textual.widgets import ContentSwitcher
from tui_helpers import SIZE, wait_for

from n2n_core.runs.records import EvalRecord
from n2n_tui.screens.compare import CompareScreen
from n2n_tui.widgets.charts import Chart

RUNS = ["00000-gauss-baseline", "00001-poisson-8gpu"]


def _prepare(results: Path) -> list[Path]:
    dirs = [Path("results") / name for name in RUNS]
    base = {"name": "x", "train": {"steps": 100, "lr": 0.001}, "noise": {"type": "gaussian"}}
    other = {**base, "train": {"steps": 100, "lr": 0.0003}, "noise": {"type": "poisson"}}
    for name, preset in zip(RUNS, (base, other), strict=True):
        (results / name / "preset.yaml").write_text(yaml.safe_dump(preset))
    ev = EvalRecord(
        step=20000,
        time=1.0,
        snapshot="final.safetensors",
        dataset="/data/kodak",
        noise="gaussian",
        level=25.0,
        psnr=31.25,
        input_psnr=20.17,
        images=24,
        baselines={"nlm": 29.5, "bm3d": 31.1},
        best=True,
        colour_shift=0.44,
        colour_shift_worst=-1.2,
    )
    with open(results / RUNS[0] / "metrics.jsonl", "a") as f:
        f.write(json.dumps(ev.to_json()) + "\n")
    return dirs


async def test_compare_metrics_axes_views_and_export(make_app, results):
    dirs = _prepare(results)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(CompareScreen(dirs))
        await pilot.pause()
        screen = app.screen
        await wait_for(pilot, lambda: all(f.values.val_records for f in screen.feeds))
        chart = screen.query_one(Chart)
        await wait_for(pilot, lambda: "validation PSNR" in chart.border_title)
        await pilot.press("m")  # the engine's panel order: loss, psnr, lr, ms/step
        await wait_for(pilot, lambda: "learning rate" in chart.border_title)
        await pilot.press("m", "m")
        await wait_for(pilot, lambda: "training loss (EMA, log)" in chart.border_title)
        assert chart.log_y
        assert all(line.xs for line in chart._lines)
        await pilot.press("t")
        await wait_for(pilot, lambda: "wall time" in chart.border_title)
        # minutes since each run's first record, not steps
        assert max(max(line.xs) for line in chart._lines) < 24 * 60

        switcher = screen.query_one(ContentSwitcher)
        await pilot.press("v")
        assert switcher.current == "cmp-config"
        table = screen.query_one("#cmp-config-body").content
        keys = [c.plain for c in table.columns[0]._cells]
        assert keys == ["noise.type", "train.lr"]  # only what differs, in preset order
        await pilot.press("v")
        assert switcher.current == "cmp-eval"
        first = screen.query_one("#cmp-eval-0").content.renderables[0]
        assert [c.header for c in first.columns][-3:] == ["shift", "nlm", "bm3d"]
        assert first.columns[-3]._cells == ["0.44"]  # the network's colour shift on the cell
        second = screen.query_one("#cmp-eval-1").content
        assert "not evaluated yet" in second.plain

        await pilot.press("e")
        exports = results / "exports"
        await wait_for(pilot, lambda: len(list(exports.glob("compare-*"))) == 3, timeout=30)
        md = next(exports.glob("compare-*.md")).read_text()
        assert "| 00000-gauss-baseline | finished |" in md and "31.25" in md


async def test_runs_screen_exports_the_selected_run(make_app, results):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        await pilot.press("e")
        exports = results / "exports"
        await wait_for(pilot, lambda: len(list(exports.glob("runs-*.csv"))) == 1, timeout=30)
        # a second export never overwrites the first
        await pilot.press("e")
        await wait_for(pilot, lambda: len(list(exports.glob("runs-*.csv"))) == 2, timeout=30)


async def test_runs_table_shows_the_evaluation_psnr(make_app, results):
    """The best snapshot's mean evaluation PSNR beside best/last validation, sortable."""
    from n2n_tui.screens.runs import RunsScreen
    from n2n_tui.widgets.common import RunsTable

    _prepare(results)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one(RunsTable)
        await wait_for(pilot, lambda: table.row_count >= 2)
        assert str(table.get_cell(RUNS[0], "eval")) == "31.25"
        assert str(table.get_cell(RUNS[1], "eval")) == "—"


async def test_pictures_compare_the_same_kind_of_model_and_say_which(
    make_app, results: Path, monkeypatch
):
    from n2n_tui.widgets.common import PathModal

    (results / RUNS[0] / "snapshots" / "final.onnx").write_bytes(b"onnx")  # frozen later
    jobs: list = []

    def denoise_each(image, each):
        jobs.extend(each)
        return "stop here"  # shown as an error: no picture to draw

    monkeypatch.setattr("n2n_tui.models.snapshots.denoise_each", denoise_each)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(CompareScreen([results / name for name in RUNS]))
        await pilot.pause()
        await pilot.press("p")
        modal = app.screen
        assert isinstance(modal, PathModal)
        assert ".safetensors" in modal.hint
        assert "00000-gauss-baseline: final.safetensors" in modal.hint
        assert "00001-poisson-8gpu: snapshot-00100000.safetensors" in modal.hint
        image = results / "input.png"
        image.write_bytes(b"")
        modal.query_one("Input").value = str(image)
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(jobs) == 2)
        assert [snap.suffix for snap, _ in jobs] == [".safetensors", ".safetensors"]
