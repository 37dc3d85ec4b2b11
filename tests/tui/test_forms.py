"""Launch and the preset editor: every choice readable without colour; Launch remembers
what was launched, and a sweep grid is always in view."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Input, RadioButton, Switch
from tui_helpers import SIZE, text_of, wait_for

from n2n_tui.screens.launch import LaunchScreen
from n2n_tui.screens.presets import PresetEditorScreen
from n2n_tui.widgets.common import ConfirmModal, RunsTable


def plain(widget) -> str:
    r = widget.render()
    return getattr(r, "plain", None) or str(r)


async def test_radio_buttons_and_switches_read_without_colour(make_app, presets: Path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen(Path("presets/quick.yaml")))
        await pilot.pause()
        radios = {b.id: plain(b) for b in app.screen.query("#launch-nproc RadioButton")}
        assert "●" in radios["nproc-1"] and "○" in radios["nproc-8"], radios
        app.screen.query_one("#nproc-8", RadioButton).value = True
        await pilot.pause()
        assert "●" in plain(app.screen.query_one("#nproc-8")), "the chosen one"
        assert "○" in plain(app.screen.query_one("#nproc-1")), "the one no longer chosen"
        await pilot.press("escape")

        await pilot.press("p")
        await wait_for(pilot, lambda: getattr(app.screen, "entries", None))
        entry = next(e for e in app.screen.entries if e.preset is not None)
        app.push_screen(PresetEditorScreen(entry.path, entry.data, entry.preset, app.presets_dir))
        await wait_for(pilot, lambda: app.screen.query(Switch))
        switches = list(app.screen.query(Switch))
        for s in switches:
            assert plain(s).endswith("on" if s.value else "off"), (s.id, plain(s))
        s = switches[0]
        s.toggle()
        await pilot.pause()
        assert plain(s).endswith("on" if s.value else "off")


def fake_start(monkeypatch) -> list:
    """LaunchScreen.start records the spec instead of starting n2n-core."""
    started: list = []
    monkeypatch.setattr(LaunchScreen, "start", lambda self, spec: started.append(spec))
    return started


async def _launch(pilot) -> None:
    await pilot.press("ctrl+l")
    assert isinstance(pilot.app.screen, ConfirmModal)
    await pilot.press("y")
    await pilot.pause()


async def test_launch_remembers_what_was_launched_only(make_app, presets: Path, monkeypatch):
    started = fake_start(monkeypatch)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen(Path("presets/quick.yaml")))
        await pilot.pause()
        screen = app.screen
        screen.query_one("#launch-name", Input).value = "again"
        screen.query_one("#launch-overrides", Input).value = "train.steps=30"
        await pilot.pause()
        await _launch(pilot)
        assert [s.name for s in started] == ["again"]
        await pilot.press("escape")
        # Typed, invalid and never launched: not brought back.
        app.push_screen(LaunchScreen())
        await pilot.pause()
        assert app.screen.query_one("#launch-overrides", Input).value == "train.steps=30"
        app.screen.query_one("#launch-overrides", Input).value = "train.steps=-5"
        await pilot.pause()
        await pilot.press("escape")
        app.push_screen(LaunchScreen())
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#launch-preset").value == "presets/quick.yaml"
        assert screen.query_one("#launch-name", Input).value == "again"
        assert screen.query_one("#launch-overrides", Input).value == "train.steps=30"


async def test_a_sweep_grid_shows_and_never_comes_back_unasked(
    make_app, presets: Path, monkeypatch
):
    started = fake_start(monkeypatch)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(LaunchScreen(Path("presets/quick.yaml")))
        await pilot.pause()
        screen = app.screen
        note = screen.query_one("#launch-sweep-note")
        assert not note.display
        screen.query_one("#launch-grid", Input).value = "train.lr=1e-3,3e-4 train.crop=32,64"
        await pilot.pause()
        assert note.display and "a sweep of 4 points" in text_of(note)
        assert "sweep" in str(screen.query_one("#launch-go", Button).label).lower()
        await _launch(pilot)
        assert started[-1].is_sweep
        await pilot.press("escape")
        app.push_screen(LaunchScreen())
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#launch-grid", Input).value == ""
        assert not screen.query_one("#launch-sweep-note").display
        spec, _ = screen.spec()
        assert spec is not None and not spec.is_sweep  # a plain launch stays one


async def test_relaunch_then_launch_shows_what_was_relaunched(make_app, results: Path, monkeypatch):
    started = fake_start(monkeypatch)
    run = results / "00000-gauss-baseline"
    (run / "preset.yaml").write_text(Path("presets/quick.yaml").read_text())
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        table = app.screen.query_one(RunsTable)
        table.move_cursor(row=table.get_row_index("00000-gauss-baseline"))
        await pilot.press("L")
        await pilot.pause()
        app.screen.query_one("#launch-overrides", Input).value = "train.steps=40"
        await pilot.pause()
        await _launch(pilot)
        assert started and started[-1].overrides == ["train.steps=40"]
        await pilot.press("escape")
        await pilot.press("l")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        assert (
            screen.query_one("#launch-preset").value == "results/00000-gauss-baseline/preset.yaml"
        )
        assert screen.query_one("#launch-overrides", Input).value == "train.steps=40"


async def test_opening_the_preset_editor_validates_nothing_until_an_edit(
    make_app, presets: Path, monkeypatch
):
    """Each field says its first value as it mounts; validating the whole preset for each
    (with a query per field) made the editor take seconds to open."""
    from n2n_tui.models import presetform as pf
    from n2n_tui.widgets.presets.form import PresetForm

    calls = []
    real = pf.validate
    monkeypatch.setattr(pf, "validate", lambda data: calls.append(1) or real(data))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await wait_for(pilot, lambda: getattr(app.screen, "entries", None))
        entry = next(e for e in app.screen.entries if e.path.name == "quick.yaml")
        app.push_screen(PresetEditorScreen(entry.path, entry.data, entry.preset, app.presets_dir))
        await wait_for(pilot, lambda: app.screen.query("#f-train-crop"))
        await pilot.pause(0.3)
        assert calls == []
        form = app.screen.query_one(PresetForm)
        app.screen.query_one("#f-train-crop", Input).value = "50"
        await wait_for(pilot, lambda: "train.crop" in form.errors)
        assert len(calls) == 1
