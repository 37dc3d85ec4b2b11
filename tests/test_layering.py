"""Layering: the engine never imports the TUI; the TUI never imports the training loop."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_core_does_not_import_textual():
    mods = _modules_after("import n2n_core, n2n_core.runs, n2n_core.config, n2n_core.cli")
    assert "textual" not in mods


def test_tui_does_not_import_torch_or_training():
    mods = _modules_after(
        "import n2n_tui.app\n"
        "import n2n_tui.screens.runs, n2n_tui.screens.dashboard, n2n_tui.screens.launch\n"
        "import n2n_tui.screens.presets, n2n_tui.screens.snapshots, n2n_tui.screens.compare"
    )
    assert "torch" not in mods
    assert "n2n_core.train" not in mods
