"""A validation started in the TUI is stored as `evaluate` stores one: with its noise level
and colour shift, so Compare's evaluation view and the export show them."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import ContentSwitcher, Input, Static
from tui_helpers import SIZE, wait_for

from n2n_core.runs.export import markdown
from n2n_core.runs.summary import summarize_run
from n2n_tui.models.procs import CoreResult
from n2n_tui.screens.compare import CompareScreen
from n2n_tui.screens.snapshots import SnapshotsScreen

# What `n2n-core validate --json` prints (evaluation.protocol.ValResult.to_json).
RESULT = {
    "psnr": 31.82,
    "input_psnr": 20.63,
    "images": 3,
    "noise": "gaussian",
    "seed": 0,
    "level": 25.0,
    "colour_shift": 0.72,
    "colour_shift_worst": -2.3,
    "colour_shift_worst_image": "x.png",
    "colour_shift_worst_channel": "G",
}


async def test_tui_validation_record_has_level_and_colour_shift(
    make_app, results: Path, monkeypatch
):
    def run_core(args, timeout=None):
        return CoreResult(args, 0, json.dumps(RESULT) + "\n", "")

    monkeypatch.setattr("n2n_tui.screens.snapshots.run_core", run_core)
    run = results / "00000-gauss-baseline"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(SnapshotsScreen(run))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.snaps) == 4)
        await pilot.press("end", "v")
        app.screen.query_one(Input).value = "builtin:photos-val"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.snaps[-1].validated is not None)
        rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert rec["kind"] == "eval" and rec["level"] == 25.0 and rec["noise"] == "gaussian"
        assert rec["colour_shift"] == 0.72 and rec["colour_shift_worst_channel"] == "G"
        assert "seed" not in rec  # a validate result's own fields stay out of the record

        await pilot.press("escape")
        app.push_screen(CompareScreen([run, results / "00001-poisson-8gpu"]))
        await pilot.pause()
        cmp = app.screen
        await pilot.press("v", "v")
        assert cmp.query_one(ContentSwitcher).current == "cmp-eval"
        await wait_for(pilot, lambda: "0.72" in _text(cmp.query_one("#cmp-eval-0", Static)))
        shown = _text(cmp.query_one("#cmp-eval-0", Static))
        for want in ("level", "input", "shift", "25", "20.63", "31.82"):
            assert want in shown, want
    md = markdown([summarize_run(run)])
    row = next(line for line in md.splitlines() if line.startswith("| final.safetensors"))
    assert "| 25 |" in row and "| 20.63 |" in row and "0.72" in row


def _text(static: Static) -> str:
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    Console(file=out, width=120, color_system=None).print(static.content)
    return out.getvalue()
