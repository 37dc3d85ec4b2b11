"""Launch and the preset editor: every choice readable without colour."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import RadioButton, Switch
from tui_helpers import SIZE, wait_for

from n2n_tui.screens.launch import LaunchScreen
from n2n_tui.screens.presets import PresetEditorScreen


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
        app.push_screen(PresetEditorScreen(entry.path, entry.data, entry.preset))
        await wait_for(pilot, lambda: app.screen.query(Switch))
        switches = list(app.screen.query(Switch))
        for s in switches:
            assert plain(s).endswith("on" if s.value else "off"), (s.id, plain(s))
        s = switches[0]
        s.toggle()
        await pilot.pause()
        assert plain(s).endswith("on" if s.value else "off")
