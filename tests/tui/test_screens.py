"""Pilot tests: every screen driven through the real app on recorded run folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, Log
from tui_helpers import CLOCK, SIZE, text_of, wait_for

from n2n_tui.models.procs import CoreResult
from n2n_tui.screens.compare import CompareScreen
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.launch import LaunchScreen
from n2n_tui.screens.presets import PresetEditorScreen, PresetsScreen, SavePresetModal
from n2n_tui.screens.runs import RunsScreen
from n2n_tui.screens.snapshots import SnapshotsScreen
from n2n_tui.widgets.common import ConfirmModal, ErrorModal, RunsTable, TextModal
from n2n_tui.widgets.dashboard import RunHeader, RunValues

# -- runs ----------------------------------------------------------------------------


def table_keys(screen) -> list[str]:
    table = screen.query_one(RunsTable)
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


async def test_runs_list_shows_every_run_and_new_ones_appear(make_app, results: Path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert table_keys(screen) == [
            "00003-orphan",
            "00002-crashy",
            "00001-poisson-8gpu",
            "00000-gauss-baseline",
        ]
        by = {r.path.name: r for r in app.rows}
        assert by["00000-gauss-baseline"].status == "finished"
        assert by["00000-gauss-baseline"].best_psnr == pytest.approx(31.42, abs=0.01)
        assert by["00001-poisson-8gpu"].status == "running"
        assert by["00002-crashy"].status == "failed" and by["00002-crashy"].exit_code == 1
        assert by["00003-orphan"].info is None  # shown as "no run.json"
        # A run started elsewhere (a shell, a cluster node) shows up by itself.
        shutil.copytree(results / "00000-gauss-baseline", results / "00004-from-shell")
        await wait_for(pilot, lambda: "00004-from-shell" in table_keys(app.screen))
        assert table_keys(app.screen)[0] == "00004-from-shell"


async def test_runs_filter_and_delete_with_confirmation(make_app, results: Path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        await pilot.press("slash", *"fail")
        assert table_keys(app.screen) == ["00002-crashy"]
        await pilot.press("enter", "d")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        assert (results / "00002-crashy").exists()
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: not (results / "00002-crashy").exists())
        await wait_for(pilot, lambda: table_keys(app.screen) == [])
        # A running run is not deleted.
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(table_keys(app.screen)) == 3)
        app.screen.query_one(RunsTable).move_cursor(row=1)
        await pilot.press("d")
        assert not isinstance(app.screen, ConfirmModal)
        assert (results / "00001-poisson-8gpu").exists()


# -- dashboard -----------------------------------------------------------------------


async def test_dashboard_of_a_finished_run(make_app, results: Path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        app.screen.query_one(RunsTable).move_cursor(row=3)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        await wait_for(pilot, lambda: screen.feed.values.step == 20000)
        await pilot.pause(0.3)
        values = text_of(screen.query_one(RunValues))
        assert "PSNR 31.40" in values and "input 20.17" in values and "best 31.42" in values
        header = text_of(screen.query_one(RunHeader))
        assert "finished" in header and "20,000 / 20,000" in header
        assert "final snapshot" in "\n".join(screen.query_one(Log).lines)
        # Stop cannot act on a finished run, and says so instead of doing nothing.
        await pilot.press("x")
        assert not isinstance(app.screen, ConfirmModal)
        assert "finished; nothing to stop" in "\n".join(str(n.message) for n in app._notifications)


async def test_dashboard_survives_a_damaged_log(make_app, results: Path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(DashboardScreen(results / "00002-crashy"))
        await pilot.pause()
        screen = app.screen
        await wait_for(pilot, lambda: screen.feed.values.step == 2600)
        await pilot.pause(0.3)
        header = text_of(screen.query_one(RunHeader))
        assert "failed (1)" in header
        assert "RuntimeError: DataLoader worker" in "\n".join(screen.query_one(Log).lines)
        assert screen.check_action("resume", ()) is True


async def test_dashboard_follows_a_fast_run(make_app, results: Path):
    """Thousands of lines a second are ingested in bounded chunks; the UI keeps up."""
    run = results / "00001-poisson-8gpu"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(DashboardScreen(run))
        await pilot.pause()
        screen = app.screen
        await wait_for(pilot, lambda: screen.feed.values.step == 123400)
        step, lines = 123400, []
        for _ in range(20):
            for _ in range(1000):
                step += 1
                rec = {
                    "kind": "train",
                    "step": step,
                    "time": CLOCK,
                    "loss": 0.01,
                    "lr": 1e-4,
                    "ms_per_step": 20.0,
                }
                lines.append(json.dumps(rec) + "\n")
            with open(run / "metrics.jsonl", "a") as f:
                f.write("".join(lines))
            lines.clear()
            await pilot.pause(0.01)
        with open(run / "metrics.jsonl", "a") as f:
            f.write(
                json.dumps(
                    {"kind": "val", "step": step, "time": CLOCK, "psnr": 30.5, "input_psnr": 19.9}
                )
            )
            f.write("\n")
        await wait_for(pilot, lambda: screen.feed.values.psnr == 30.5)
        assert screen.feed.values.step == 143400
        assert len(screen.feed.state.series["loss"].points()[0]) <= screen.feed.state.capacity
        await pilot.pause(0.3)
        assert "PSNR 30.50" in text_of(screen.query_one(RunValues))


async def test_replay_final_state_at_once(make_app, results: Path):
    run = results / "00000-gauss-baseline"
    app = make_app(replay=run, speed=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen) and screen.replay is not None
        await wait_for(pilot, lambda: screen.replay.done)
        assert screen.feed.values.step == 20000
        assert screen.feed.values.best_psnr == pytest.approx(31.42, abs=0.01)


async def test_replay_pause_seek_speed(make_app, results: Path):
    run = results / "00000-gauss-baseline"
    app = make_app(replay=run, speed=50)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        r = screen.replay
        await pilot.pause(0.3)
        assert 0 < screen.feed.values.step < 20000  # playing, not finished
        await pilot.press("space")
        assert r.paused
        step = screen.feed.values.step
        await pilot.pause(0.3)
        assert screen.feed.values.step == step  # paused
        await pilot.press("end")
        await wait_for(pilot, lambda: screen.feed.values.step == 20000)
        await pilot.press("home")
        await wait_for(pilot, lambda: screen.feed.values.step < 1000)
        await pilot.press("plus")
        assert r.speed == 100
        await pilot.press("right")
        await wait_for(pilot, lambda: screen.feed.values.step >= 900)


# -- presets -------------------------------------------------------------------------


async def test_presets_list_and_editor_validate_as_you_type(make_app, presets: Path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PresetsScreen)
        await wait_for(pilot, lambda: screen.entries)
        assert [(e.path.name, e.source) for e in screen.entries] == [
            ("broken.yaml", "local"),
            ("poisson-long.yaml", "local"),
            ("quick.yaml", "local"),
            ("tiny.yaml", "builtin"),
        ]
        broken = screen.entries[0]
        assert broken.preset is None and "train.crop" in broken.error
        screen.query_one(RunsTable).move_cursor(row=2)
        await pilot.press("e")
        editor = app.screen
        assert isinstance(editor, PresetEditorScreen)
        await pilot.pause()
        crop = editor.query_one("#f-train-crop", Input)
        crop.value = "50"
        await pilot.pause()
        assert "multiple of 32" in text_of(editor.query_one("#err-f-train-crop"))
        assert "1 problem" in text_of(editor.query_one("#editor-status"))
        crop.value = "96"
        await pilot.pause()
        assert text_of(editor.query_one("#err-f-train-crop")) == ""
        assert "train.crop" in text_of(editor.query_one("#editor-status"))
        # Own data: the mode rewrites data.train's prefix and turns synthetic noise off.
        editor.query_one("#data-mode").value = "pairs"
        form = editor.query_one("#preset-form")
        await wait_for(pilot, lambda: form.noise_type == "none")
        assert editor.query_one("#f-data-train", Input).value.startswith("pairs:")
        assert editor.query_one("#f-noise-type").value == "none"
        editor.query_one("#data-mode").value = "builtin"
        # Each select change arrives as a message: wait for the form, not a fixed time.
        await wait_for(
            pilot,
            lambda: (
                form.values.get("data.train") == "builtin:photos" and form.noise_type == "gaussian"
            ),
        )
        assert editor.query_one("#f-data-train", Input).value == "builtin:photos"
        assert editor.query_one("#f-noise-type").value == "gaussian"
        # Another noise model brings its own fields.
        editor.query_one("#f-noise-type").value = "poisson"
        await wait_for(
            pilot, lambda: form.noise_type == "poisson" and form.query("#f-noise-val--lam")
        )
        await pilot.pause(0.2)
        assert editor.query("#f-noise-val--lam") and not editor.query("#f-noise-val--sigma")
        await pilot.press("ctrl+s")
        modal = app.screen
        assert isinstance(modal, SavePresetModal)
        diff = "\n".join(str(s.render()) for s in modal.query(".dialog-scroll Static"))
        assert "+  crop: 96" in diff and "-  crop: 64" in diff
        modal.query_one(Input).value = "quick-poisson"
        await pilot.press("enter")
        await wait_for(pilot, lambda: (presets / "quick-poisson.yaml").exists())
        await pilot.pause(0.2)
        assert isinstance(app.screen, PresetsScreen)
        saved = (presets / "quick-poisson.yaml").read_text()
        assert "crop: 96" in saved and "type: poisson" in saved
        assert (presets / "quick.yaml").read_text().count("crop: 64") == 1  # original untouched


async def test_presets_lists_builtin_ones_and_saves_an_edited_one_locally(
    make_app, presets: Path, builtin_presets: Path
):
    """A built-in preset is listed with its source; a local file of the same name overrides
    it; an edited built-in one is saved into the local folder, never beside the original."""
    (presets / "broken.yaml").unlink()
    shipped = (builtin_presets / "tiny.yaml").read_text()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        screen = app.screen
        await wait_for(pilot, lambda: screen.entries)
        rows = [(e.path.name, e.source_label) for e in screen.entries]
        assert rows == [
            ("poisson-long.yaml", "local"),
            ("quick.yaml", "local"),
            ("tiny.yaml", "builtin"),
        ]
        screen.query_one(RunsTable).move_cursor(row=2)
        await pilot.press("e")
        editor = app.screen
        assert isinstance(editor, PresetEditorScreen)
        await pilot.pause()
        editor.query_one("#f-train-steps", Input).value = "600"
        await pilot.pause()
        await pilot.press("ctrl+s")
        modal = app.screen
        assert isinstance(modal, SavePresetModal)
        assert modal.query_one("#save-path", Input).value == str(Path("presets") / "tiny-2.yaml")
        modal.query_one("#save-path", Input).value = "tiny"
        await pilot.press("enter")
        await wait_for(pilot, lambda: (presets / "tiny.yaml").exists())
        await pilot.pause(0.2)
        assert "steps: 600" in (presets / "tiny.yaml").read_text()
        assert (builtin_presets / "tiny.yaml").read_text() == shipped
        assert sorted(builtin_presets.iterdir()) == [builtin_presets / "tiny.yaml"]
        # The local file of the same name now overrides the built-in one.
        await wait_for(pilot, lambda: any(e.overrides_builtin for e in screen.entries))
        tiny = next(e for e in screen.entries if e.path.name == "tiny.yaml")
        assert tiny.path == Path("presets/tiny.yaml") and tiny.preset.train.steps == 600
        assert tiny.source_label == "local, over built-in"


# -- launch --------------------------------------------------------------------------


async def test_launch_shows_the_exact_command(make_app, presets: Path, results: Path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen(Path("presets/quick.yaml")))
        await pilot.pause()
        screen = app.screen
        cmd = lambda: text_of(screen.query_one("#launch-command"))  # noqa: E731
        assert cmd() == "n2n-core run presets/quick.yaml --results-dir results --name quick"
        screen.query_one("#nproc-8").value = True
        screen.query_one("#launch-device").value = "cuda"
        screen.query_one("#launch-precision").value = "bf16"
        screen.query_one("#launch-name", Input).value = "q8"
        screen.query_one("#launch-overrides", Input).value = "train.steps=50"
        await pilot.pause()
        assert cmd() == (
            "n2n-core run presets/quick.yaml --set train.steps=50 --set runtime.precision=bf16 "
            "--nproc 8 --device cuda --results-dir results --name q8"
        )
        screen.query_one("#launch-name", Input).value = "bad name!"
        await pilot.pause()
        assert "name:" in text_of(screen.query_one("#launch-error"))
        assert screen.query_one("#launch-go").disabled


async def test_launch_of_a_child_that_fails_at_once(make_app, presets: Path, results: Path):
    """The child exits with an error before making a run folder: exit status and its output are shown."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen(Path("presets/quick.yaml")))
        await pilot.pause()
        screen = app.screen
        # A missing data folder is only found by the engine (the form cannot know the disk).
        screen.query_one("#launch-overrides", Input).value = "data.train=no-such-folder"
        await pilot.pause()
        await pilot.press("ctrl+l", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), timeout=60)
        modal = app.screen
        assert "exited with status 2" in modal.message
        assert any("data.train" in ln for ln in modal.lines)


# -- snapshots, compare, help --------------------------------------------------------


async def test_snapshots_validate_appends_to_the_log(
    make_app, results: Path, monkeypatch, tmp_path
):
    calls = []

    def fake_run_core(args, timeout=None):
        calls.append(args)
        if args[0] == "validate":
            out = json.dumps({"psnr": 31.8249, "images": 24, "noise": "gaussian", "seed": 0})
            return CoreResult(args, 0, out + "\n", "")
        return CoreResult(args, 2, "", "error: snapshot.safetensors: not a valid snapshot")

    monkeypatch.setattr("n2n_tui.screens.snapshots.run_core", fake_run_core)
    run = results / "00000-gauss-baseline"
    data = tmp_path / "kodak"
    data.mkdir()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(SnapshotsScreen(run))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.snaps) == 4)
        assert [(s.step, s.psnr) for s in screen.snaps][:2] == [
            (5000, pytest.approx(30.52, abs=0.01)),
            (10000, pytest.approx(31.26, abs=0.01)),
        ]
        assert screen.snaps[-1].name == "final.safetensors"
        await pilot.press("v")
        app.screen.query_one(Input).value = str(data)
        await pilot.press("enter")
        result = screen.query_one("#snap-result")
        await wait_for(pilot, lambda: "PSNR 31.82 dB" in text_of(result))
        assert calls[0][:3] == [
            "validate",
            "--snapshot",
            str(run / "snapshots" / "snapshot-00005000.safetensors"),
        ]
        log = (run / "log.txt").read_text().splitlines()[-1]
        assert "validate snapshot-00005000.safetensors" in log and "PSNR 31.82 dB" in log
        await pilot.press("f")
        await wait_for(pilot, lambda: "freeze failed" in text_of(result))
        assert "not a valid snapshot" in text_of(result)


async def test_compare_overlays_psnr_of_marked_runs(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        await pilot.press("c")  # nothing marked: a hint, no screen
        assert isinstance(app.screen, RunsScreen)
        app.screen.query_one(RunsTable).move_cursor(row=2)
        await pilot.press("space", "down", "space", "c")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [p.name for p in screen.run_dirs] == ["00000-gauss-baseline", "00001-poisson-8gpu"]
        await wait_for(pilot, lambda: all(f.values.val_records for f in screen.feeds))
        await pilot.pause(0.6)
        legend = text_of(screen.query_one("#cmp-legend"))
        assert "00001-poisson-8gpu 29.97" in legend and "00000-gauss-baseline 31.42" in legend


async def test_help_lists_the_keys_of_the_screen(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, TextModal)
        body = app.screen.body.plain
        assert "Delete" in body and "Compare" in body
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_help_names_keys_as_the_keyboard_shows_them(make_app, results: Path):
    from tui_helpers import FIXTURES

    run = results / "00004-sampled"
    shutil.copytree(FIXTURES / "pictures" / "00000-sampled", run)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        app.push_screen(DashboardScreen(run))
        await pilot.pause()
        await wait_for(pilot, lambda: app.screen.query_one("SamplePanel").has_samples)
        await pilot.press("question_mark")
        lines = app.screen.body.plain.splitlines()
        assert any(ln.split() == ["[", "Older", "sample", "step"] for ln in lines), lines
        assert any(ln.split() == ["]", "Newer", "sample", "step"] for ln in lines), lines
        assert any(ln.split()[:2] == ["<", "Previous"] for ln in lines), lines
        keys = [ln.split()[0] for ln in lines if ln.startswith("  ")]
        assert not [k for k in keys if "_" in k], keys  # no left_square_bracket, no equals_sign
