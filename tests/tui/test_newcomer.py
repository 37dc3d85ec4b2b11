"""What a newcomer tripped over, each driven through the real app.

Every test here failed on the code before the fix it names.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import yaml
from textual.widgets import Input
from tui_helpers import CLOCK, SIZE, text_of, wait_for

from n2n_tui.models.procs import CoreResult
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.launch import LaunchScreen
from n2n_tui.screens.presets import PresetEditorScreen, PresetsScreen, SavePresetModal
from n2n_tui.screens.runs import RunsScreen
from n2n_tui.screens.snapshots import SnapshotsScreen
from n2n_tui.widgets.common import ConfirmModal, PathModal, RunsTable, TextModal
from n2n_tui.widgets.dashboard import RunHeader


def notes(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


def live_run(results: Path, name: str = "00007-live", **info) -> Path:
    """A run folder whose process is this test (alive, local): its status reads running."""
    run = results / name
    run.mkdir()
    data = {
        "status": "running",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "device": "cpu",
        "world_size": 1,
        "precision": "fp32",
        "total_steps": 200,
        "started": CLOCK - 100,
        "ended": None,
        "exit_code": None,
        **info,
    }
    (run / "run.json").write_text(json.dumps(data))
    (run / "metrics.jsonl").write_text("")
    (run / "log.txt").write_text("")
    return run


def write_records(run: Path, records: list[dict]) -> None:
    with open(run / "metrics.jsonl", "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


# -- 1. launching is a deliberate act ---------------------------------------------------


async def test_enter_in_a_launch_field_never_launches(make_app, monkeypatch):
    started = []
    monkeypatch.setattr(LaunchScreen, "start", lambda self, spec: started.append(spec))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen(Path("presets/quick.yaml")))
        await pilot.pause()
        screen = app.screen
        screen.query_one("#launch-name", Input).focus()
        await pilot.press(*"mine", "enter")
        await pilot.pause()
        assert started == [] and not isinstance(app.screen, ConfirmModal)
        # The deliberate key asks, showing the exact command; only yes starts it.
        await pilot.press("ctrl+l")
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        cmd = "n2n-core run presets/quick.yaml --results-dir results --name mine"
        assert cmd in modal.body
        await pilot.press("n")
        assert started == [] and app.screen is screen
        await pilot.press("ctrl+l", "y")
        await pilot.pause()
        assert [s.display() for s in started] == [cmd]


# -- 8. every problem of the overrides, blamed on --set, before launching ----------------


async def test_launch_checks_overrides_and_shows_every_problem(make_app, monkeypatch):
    started = []
    monkeypatch.setattr(LaunchScreen, "start", lambda self, spec: started.append(spec))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen(Path("presets/quick.yaml")))
        await pilot.pause()
        screen = app.screen
        screen.query_one("#launch-overrides", Input).value = "train.stepz=5 train.crop=50"
        await pilot.pause()
        err = text_of(screen.query_one("#launch-error"))
        assert "--set train.stepz=5: unknown key" in err
        assert "--set train.crop=50:" in err and "multiple of 32" in err
        assert "quick.yaml" not in err and "more problem" not in err
        assert screen.query_one("#launch-go").disabled
        await pilot.press("ctrl+l")
        assert not isinstance(app.screen, ConfirmModal) and started == []


# -- Also: launch remembers, relaunch with changes, devices, cores -----------------------


async def test_relaunch_a_run_with_changes(make_app, results: Path):
    run = results / "00000-gauss-baseline"
    (run / "preset.yaml").write_text(Path("presets/quick.yaml").read_text())
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        app.screen.query_one(RunsTable).move_cursor(row=4)
        await pilot.press("L")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        await pilot.pause()
        assert screen.query_one("#launch-preset").value == str(
            Path("results/00000-gauss-baseline/preset.yaml")
        )
        assert screen.query_one("#launch-name", Input).value == "gauss-baseline"


async def test_launch_offers_only_present_devices_and_warns_about_cores(make_app):
    app = make_app(device_probe=lambda: {"devices": ["cpu"], "cpu_cores": 2})
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen(Path("presets/quick.yaml")))
        screen = app.screen
        await wait_for(pilot, lambda: app.devices is not None)
        await pilot.pause()
        options = [str(v) for _, v in screen.query_one("#launch-device")._options]
        assert options == ["auto", "cpu"]
        screen.query_one("#nproc-8").value = True
        await pilot.pause()
        assert "8 processes on 2 CPU cores" in text_of(screen.query_one("#launch-warning"))
        assert not screen.query_one("#launch-go").disabled  # a warning, not a refusal


# -- 2, 3. the preset editor -----------------------------------------------------------


async def _open_editor(pilot, row: int = 2) -> PresetEditorScreen:
    await pilot.press("p")
    pilot.app.screen.query_one(RunsTable).move_cursor(row=row)
    await pilot.press("e")
    await pilot.pause()
    return pilot.app.screen


async def test_leaving_the_editor_with_unsaved_changes_asks(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        editor = await _open_editor(pilot)
        assert isinstance(editor, PresetEditorScreen)
        editor.query_one("#f-train-steps", Input).value = "60"
        await pilot.pause()
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        assert app.screen is editor
        assert editor.query_one("#f-train-steps", Input).value == "60"
        await pilot.press("escape", "y")
        await pilot.pause()
        assert isinstance(app.screen, PresetsScreen)
        # Nothing changed: no question.
        await _open_editor(pilot)
        await pilot.press("escape")
        assert isinstance(app.screen, PresetsScreen)


async def test_save_as_new_takes_the_new_name_and_flags_the_description(make_app, presets: Path):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await _open_editor(pilot)
        editor.query_one("#f-train-steps", Input).value = "60"
        await pilot.pause()
        await pilot.press("ctrl+s")
        modal = app.screen
        assert isinstance(modal, SavePresetModal)
        modal.query_one("#save-path", Input).value = "quick-60"
        await pilot.pause()
        assert modal.query_one("#save").region.bottom <= 24  # the buttons fit 24 rows
        assert "description" in text_of(modal.query_one("#save-desc-warning"))
        modal.query_one("#save-desc", Input).value = "60 steps of quick"
        await pilot.pause()
        assert text_of(modal.query_one("#save-desc-warning")) == ""
        modal.query_one("#save-path", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: (presets / "quick-60.yaml").exists())
        saved = yaml.safe_load((presets / "quick-60.yaml").read_text())
        assert saved["name"] == "quick-60" and saved["description"] == "60 steps of quick"
        assert saved["train"]["steps"] == 60


async def test_text_glitches(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p")
        assert "presets — presets" not in f"{app.screen.title} — {app.screen.sub_title}"
        # A folded YAML description ends in a newline; the field must not show it.
        (Path("presets") / "folded.yaml").write_text(
            Path("presets/quick.yaml")
            .read_text()
            .replace(
                "description: Gaussian sigma 25, Noise2Noise, tiny CPU run",
                "description: >\n  two\n  lines\n",
            )
        )
        await pilot.press("g")
        app.screen.query_one(RunsTable).move_cursor(row=1)
        await pilot.press("e")
        await pilot.pause()
        assert "\n" not in app.screen.query_one("#f-description", Input).value
        await pilot.press("escape")


async def test_help_box_grows_with_the_window_before_it_scrolls(make_app):
    for size in ((80, 24), (160, 48)):
        app = make_app()
        async with app.run_test(size=size) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            modal = app.screen
            assert isinstance(modal, TextModal)
            scroll = modal.query_one(".dialog-scroll")
            box = modal.query_one(".dialog-box")
            assert box.outer_size.height <= size[1]
            if scroll.virtual_size.height > scroll.size.height:  # it scrolls: the window is full
                assert box.outer_size.height >= 0.8 * size[1], size


# -- 4, 10, Also: snapshots ---------------------------------------------------------------


def _fake_core(calls, psnr=31.82, input_psnr=20.63):  # as the CLI rounds them
    def run_core(args, timeout=None):
        calls.append(args)
        if args[0] in ("validate", "validate-frozen"):
            out = {
                "psnr": psnr,
                "input_psnr": input_psnr,
                "images": 3,
                "noise": "gaussian",
                "seed": 0,
            }
            return CoreResult(args, 0, json.dumps(out) + "\n", "")
        return CoreResult(args, 0, "", "")

    return run_core


async def test_validate_defaults_to_the_runs_val_set_and_records_the_result(
    make_app, results: Path, monkeypatch
):
    calls = []
    monkeypatch.setattr("n2n_tui.screens.snapshots.run_core", _fake_core(calls))
    run = results / "00000-gauss-baseline"
    (run / "preset.yaml").write_text(Path("presets/quick.yaml").read_text())
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(SnapshotsScreen(run))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.snaps) == 4)
        await pilot.press("end", "v")
        modal = app.screen
        assert isinstance(modal, PathModal)
        assert modal.query_one(Input).value == "builtin:photos-val"
        await pilot.press("enter")
        result = screen.query_one("#snap-result")
        await wait_for(pilot, lambda: "PSNR 31.82 dB" in text_of(result))
        assert "input 20.63" in text_of(result) and "+11.19" in text_of(result)
        assert calls[0][calls[0].index("--dataset-dir") + 1] == "builtin:photos-val"
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert last["kind"] == "eval" and last["psnr"] == 31.82 and last["input_psnr"] == 20.63
        assert last["snapshot"] == "final.safetensors" and last["dataset"] == "builtin:photos-val"
        await wait_for(pilot, lambda: screen.snaps[-1].validated is not None)
        table = screen.query_one(RunsTable)
        row = table.get_row("final.safetensors")
        assert any("31.82" in str(c) for c in row)


async def test_freeze_never_overwrites_silently_and_onnx_is_usable(
    make_app, results: Path, monkeypatch
):
    calls = []
    monkeypatch.setattr("n2n_tui.screens.snapshots.run_core", _fake_core(calls))
    run = results / "00000-gauss-baseline"
    (run / "snapshots" / "final.onnx").write_bytes(b"onnx")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(SnapshotsScreen(run))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.snaps) == 5)
        assert "final.onnx" in [s.name for s in screen.snaps]
        screen.query_one(RunsTable).move_cursor(row=3)
        assert screen.selected().name == "final.safetensors"
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmModal) and "final.onnx" in app.screen.body
        await pilot.press("n")
        await pilot.pause(0.2)
        assert calls == []
        # The ONNX model validates through validate-frozen.
        screen.query_one(RunsTable).move_cursor(row=4)
        assert screen.selected().name == "final.onnx"
        await pilot.press("v")
        app.screen.query_one(Input).value = "builtin:photos-val"
        await pilot.press("enter")
        await wait_for(pilot, lambda: calls)
        assert calls[0][0] == "validate-frozen" and "--model" in calls[0]


async def test_snapshot_ages_tick(make_app, results: Path):
    now = [CLOCK]
    app = make_app(clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(SnapshotsScreen(results / "00000-gauss-baseline"))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.snaps) == 4)
        table = screen.query_one(RunsTable)
        assert "1h ago" in str(table.get_row("final.safetensors")[-2])
        now[0] += 3 * 3600
        await wait_for(pilot, lambda: "4h ago" in str(table.get_row("final.safetensors")[-2]))


# -- 5, 6. the header ticks, states clear, ETA is wall time ----------------------------


async def test_header_elapsed_ticks_without_new_metrics(make_app, results: Path):
    run = live_run(results)
    now = [CLOCK]
    app = make_app(clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(DashboardScreen(run))
        await pilot.pause()
        screen = app.screen
        await wait_for(pilot, lambda: "elapsed 1m 40s" in text_of(screen.query_one(RunHeader)))
        now[0] += 30
        await wait_for(pilot, lambda: "elapsed 2m 10s" in text_of(screen.query_one(RunHeader)))


async def test_stopping_clears_when_the_run_has_stopped(make_app, results: Path, monkeypatch):
    import threading

    release = threading.Event()

    def slow_stop(pid, grace=20.0, poll=0.2):
        release.wait(10)  # the process group takes its time to go away
        return "stopped"

    monkeypatch.setattr("n2n_tui.screens.dashboard.stop_run", slow_stop)
    run = live_run(results)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(DashboardScreen(run))
        screen = app.screen
        await pilot.pause(0.2)
        await pilot.press("x", "y")
        header = screen.query_one(RunHeader)
        await wait_for(pilot, lambda: "stopping" in text_of(header))
        info = json.loads((run / "run.json").read_text())
        info.update(status="stopped", ended=CLOCK, exit_code=130)
        (run / "run.json").write_text(json.dumps(info))
        await wait_for(
            pilot,
            lambda: "stopped" in text_of(header) and "stopping" not in text_of(header),
            timeout=4,
        )
        release.set()


async def test_eta_counts_validation_and_snapshot_time(make_app, results: Path):
    run = live_run(results)
    # 10 ms of compute per step, but validation and snapshots make each step
    # cost 100 ms of wall time: 100 steps left are 10 s, not 1 s.
    recs = []
    for step in range(10, 101, 10):
        recs.append(
            {
                "kind": "train",
                "step": step,
                "time": CLOCK - 10 + step * 0.1,
                "loss": 0.1,
                "lr": 1e-3,
                "ms_per_step": 10.0,
            }
        )
    write_records(run, recs)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(DashboardScreen(run))
        screen = app.screen
        await wait_for(pilot, lambda: screen.feed.values.step == 100)
        await pilot.pause(0.4)
        assert "ETA 10s" in text_of(screen.query_one(RunHeader))


# -- 9. corrupt run.json; x and r say why they do nothing ------------------------------


async def test_corrupt_run_json_and_keys_that_say_why(make_app, results: Path):
    (results / "00003-orphan" / "run.json").write_text('{"status": "runn')
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        by = {r.path.name: r for r in app.rows}
        assert by["00003-orphan"].status == "corrupt run.json"
        app.push_screen(DashboardScreen(results / "00003-orphan"))
        await pilot.pause(0.3)
        assert "corrupt run.json" in text_of(app.screen.query_one(RunHeader))
        await pilot.press("x")
        await pilot.press("r")
        await pilot.pause()
        assert notes(app).count("run.json") >= 2
        await pilot.press("escape")
        app.push_screen(DashboardScreen(results / "00000-gauss-baseline"))
        await pilot.pause(0.3)
        await pilot.press("x", "r")
        await pilot.pause()
        assert "finished" in notes(app).split("run.json")[-1]


# -- Also: stop dialog closes by itself; exit code recorded ------------------------------


async def test_stop_dialog_closes_when_the_run_ends_by_itself(make_app, results: Path):
    run = live_run(results)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(DashboardScreen(run))
        await pilot.pause(0.2)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmModal)
        info = json.loads((run / "run.json").read_text())
        info.update(status="finished", ended=CLOCK, exit_code=0)
        (run / "run.json").write_text(json.dumps(info))
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), timeout=5)
        assert "finished" in notes(app)


# -- 7. layouts adapt ------------------------------------------------------------------


async def test_80x24_dashboard_and_runs_are_usable(make_app, results: Path):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        table = app.screen.query_one(RunsTable)
        widths = {c.label.plain: c.get_render_width(table) for c in table.columns.values()}
        upto_last = 0
        for label, w in widths.items():
            upto_last += w
            if label == "Last":
                break
        assert upto_last <= table.size.width
        app.push_screen(DashboardScreen(results / "00001-poisson-8gpu"))
        screen = app.screen
        await wait_for(pilot, lambda: screen.feed.values.step == 123400)
        await pilot.pause(0.4)
        assert screen.query_one("#chart-loss").size.height >= 5
        header = screen.query_one(RunHeader)
        assert "ETA" in text_of(header)
        assert all(len(line) <= header.content_size.width for line in text_of(header).splitlines())


async def test_wide_terminals_use_the_space(make_app):
    app = make_app()
    async with app.run_test(size=(300, 50)) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        table = app.screen.query_one(RunsTable)
        used = sum(c.get_render_width(table) for c in table.columns.values())
        assert used >= 0.8 * table.size.width
        await pilot.press("p")
        table = app.screen.query_one(RunsTable)
        used = sum(c.get_render_width(table) for c in table.columns.values())
        assert used >= 0.8 * table.size.width


# -- Also: tables --------------------------------------------------------------------------


async def test_home_end_and_space_in_the_run_list(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        table = app.screen.query_one(RunsTable)
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("space")
        assert table.cursor_row == 0
        assert "1 marked" in text_of(app.screen.query_one("#runs-info"))
        assert isinstance(app.screen, RunsScreen)
