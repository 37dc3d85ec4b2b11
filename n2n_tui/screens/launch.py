"""Launch: pick a preset, processes, device, precision and a name; see the exact command."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import (
    Button,
    Footer,
    Header,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
)

from n2n_core.config import NAME_PATTERN, Device, Precision
from n2n_core.runs import list_run_dirs

from ..presetfiles import PresetEntry, load_presets
from ..procs import (
    LaunchSpec,
    launch_log_path,
    run_core,
    split_overrides,
    start_detached,
    tail_text,
)
from ..widgets.common import ErrorModal
from .base import BaseScreen

DEVICES = get_args(Device)
PRECISIONS = get_args(Precision)
NAME_RE = re.compile(NAME_PATTERN)
APPEAR_TIMEOUT_S = 120.0


class LaunchScreen(BaseScreen):
    """Builds an ``n2n-core run`` command and starts it detached."""

    HELP = (
        "The command shown at the bottom is exactly what is started, as a separate "
        "process: closing the TUI does not stop it. Once its run folder appears the "
        "dashboard opens. A sweep grid (KEY=V1,V2 …) starts a sweep instead, and "
        "'queue' waits until the devices are free (no other sweep or queued run holds "
        "them); both open the Sweeps screen."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+l", "launch", "Launch"),
    ]

    @dataclass
    class Launched(Message):
        run_dir: Path

    @dataclass
    class Failed(Message):
        title: str
        message: str
        lines: list[str]

    def __init__(self, preset: Path | None = None):
        super().__init__()
        self.initial = preset
        self.entries: list[PresetEntry] = []
        self.launching = False

    def compose(self) -> ComposeResult:
        self.entries = [e for e in load_presets(self.app.presets_dir) if e.preset is not None]
        options = [
            (f"{e.path.name}  —  {e.preset.description or e.preset.name}", str(e.path))
            for e in self.entries
        ]
        values = [v for _, v in options]
        # A new user's first launch should be the one that finishes in minutes.
        quick = [v for v in values if v.endswith("/quickstart.yaml") or v == "quickstart.yaml"]
        fallback = quick[0] if quick else (values[0] if values else Select.NULL)
        initial = str(self.initial) if self.initial else fallback
        if initial not in values:
            initial = fallback
        blink = not self.app.is_headless
        yield Header()
        with Vertical(id="launch-form"):
            with Horizontal(classes="field-row"):
                yield Label("preset", classes="field-label")
                yield Select(
                    options,
                    value=initial,
                    allow_blank=not options,
                    id="launch-preset",
                    classes="field-editor -wide",
                )
            with Horizontal(classes="field-row"):
                yield Label("processes", classes="field-label")
                with RadioSet(id="launch-nproc"):
                    yield RadioButton("1", value=True, id="nproc-1")
                    yield RadioButton("8", id="nproc-8")
                    yield RadioButton("custom", id="nproc-custom")
                custom = Input("2", placeholder="N", id="launch-nproc-n", classes="field-short")
                custom.cursor_blink = blink
                yield custom
            with Horizontal(classes="field-row"):
                yield Label("device", classes="field-label")
                yield Select(
                    [(d, d) for d in DEVICES],
                    value="auto",
                    allow_blank=False,
                    id="launch-device",
                    classes="field-editor",
                )
            with Horizontal(classes="field-row"):
                yield Label("precision", classes="field-label")
                yield Select(
                    [(p, p) for p in PRECISIONS],
                    value="fp32",
                    allow_blank=False,
                    id="launch-precision",
                    classes="field-editor",
                )
            with Horizontal(classes="field-row"):
                yield Label("name", classes="field-label")
                name = Input(
                    placeholder="default: the preset name",
                    id="launch-name",
                    classes="field-editor",
                )
                name.cursor_blink = blink
                yield name
            with Horizontal(classes="field-row"):
                yield Label("overrides", classes="field-label")
                over = Input(
                    placeholder="KEY=VALUE …   e.g. train.steps=200 train.batch=8",
                    id="launch-overrides",
                    classes="field-editor -wide",
                )
                over.cursor_blink = blink
                yield over
            with Horizontal(classes="field-row"):
                yield Label("sweep grid", classes="field-label")
                grid = Input(
                    placeholder="KEY=V1,V2 …   e.g. train.lr=1e-3,3e-4 train.crop=64,128",
                    id="launch-grid",
                    classes="field-editor -wide",
                )
                grid.cursor_blink = blink
                yield grid
            with Horizontal(classes="field-row"):
                yield Label("start", classes="field-label")
                with RadioSet(id="launch-when"):
                    yield RadioButton("now", value=True, id="when-now")
                    yield RadioButton("queue (when devices are free)", id="when-queue")
            yield Static("", id="launch-error", classes="field-error")
            yield Label("command", classes="dialog-sub")
            yield Static("", id="launch-command", classes="command-box")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch (ctrl+l)", variant="primary", id="launch-go")
            yield Static("", id="launch-status", classes="info-line")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "launch"
        self.sub_title = f"results: {self.app.results_dir}"
        if not self.entries:
            self.query_one("#launch-error", Static).update(
                Text(f"no valid presets in {self.app.presets_dir}; create one in Presets (p)")
            )
        self._apply_preset_defaults()
        self.query_one("#launch-preset", Select).focus()

    # -- the spec ------------------------------------------------------------------

    def entry(self) -> PresetEntry | None:
        value = self.query_one("#launch-preset", Select).value
        return next((e for e in self.entries if str(e.path) == value), None)

    def _apply_preset_defaults(self) -> None:
        e = self.entry()
        if e is None or e.preset is None:
            self.refresh_command()
            return
        rt = e.preset.runtime
        self.query_one("#launch-device", Select).value = rt.device
        self.query_one("#launch-precision", Select).value = rt.precision
        button = {1: "#nproc-1", 8: "#nproc-8"}.get(rt.nproc, "#nproc-custom")
        if button == "#nproc-custom":
            self.query_one("#launch-nproc-n", Input).value = str(rt.nproc)
        self.query_one(button, RadioButton).value = True
        self.query_one("#launch-name", Input).placeholder = f"default: {e.preset.name}"
        self.refresh_command()

    def nproc(self) -> int | None:
        pressed = self.query_one("#launch-nproc", RadioSet).pressed_button
        bid = pressed.id if pressed else "nproc-1"
        if bid == "nproc-custom":
            text = self.query_one("#launch-nproc-n", Input).value.strip()
            return int(text) if text.isdigit() and int(text) > 0 else None
        return 8 if bid == "nproc-8" else 1

    def spec(self) -> tuple[LaunchSpec | None, str]:
        e = self.entry()
        if e is None or e.preset is None:
            return None, "pick a preset"
        rt = e.preset.runtime
        n = self.nproc()
        if n is None:
            return None, "processes: enter a whole number ≥ 1"
        name = self.query_one("#launch-name", Input).value.strip() or e.preset.name
        if not NAME_RE.match(name):
            return None, "name: letters, digits, . _ - (up to 64, starting with a letter or digit)"
        device = self.query_one("#launch-device", Select).value
        precision = self.query_one("#launch-precision", Select).value
        overrides = split_overrides(self.query_one("#launch-overrides", Input).value)
        bad = [o for o in overrides if "=" not in o]
        if bad:
            return None, f"overrides: {bad[0]!r} is not KEY=VALUE"
        grid = split_overrides(self.query_one("#launch-grid", Input).value)
        bad = [g for g in grid if "=" not in g or not g.partition("=")[2].strip()]
        if bad:
            return None, f"sweep grid: {bad[0]!r} is not KEY=V1,V2"
        when = self.query_one("#launch-when", RadioSet).pressed_button
        spec = LaunchSpec(
            preset=e.path,
            name=name,
            nproc=n if n != rt.nproc else None,
            device=str(device) if device != rt.device else None,
            precision=str(precision) if precision != rt.precision else None,
            overrides=overrides,
            results_dir=self.app.results_dir,
            grid=grid,
            queue=bool(when and when.id == "when-queue"),
        )
        return spec, ""

    def refresh_command(self) -> None:
        spec, problem = self.spec()
        self.query_one("#launch-error", Static).update(Text(problem))
        cmd = self.query_one("#launch-command", Static)
        cmd.update(Text(spec.display() if spec else "—", style="bold"))
        self.query_one("#launch-go", Button).disabled = spec is None or self.launching

    @on(Select.Changed, "#launch-preset")
    def _preset_changed(self) -> None:
        self._apply_preset_defaults()

    @on(Select.Changed)
    @on(Input.Changed)
    @on(RadioSet.Changed)
    def _changed(self) -> None:
        self.refresh_command()

    @on(Input.Submitted)
    @on(Button.Pressed, "#launch-go")
    def _go(self) -> None:
        self.action_launch()

    # -- launching -----------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_launch(self) -> None:
        spec, problem = self.spec()
        if spec is None:
            self.notify(problem, title="Cannot launch", severity="error", markup=False)
            return
        if self.launching:
            return
        self.launching = True
        self.refresh_command()
        self.query_one("#launch-status", Static).update(Text(f"starting: {spec.display()}"))
        self.start(spec)

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False, name="launch")
    def start(self, spec: LaunchSpec) -> None:
        if spec.is_sweep:
            self._start_sweep(spec)
            return
        before = {p.name for p in list_run_dirs(spec.results_dir)}
        out = launch_log_path(spec.results_dir, spec.name)
        try:
            started = start_detached(spec.args(), out)
        except OSError as e:
            self.post_message(
                self.Failed("Launch failed", f"cannot start n2n-core: {e.strerror or e}", [])
            )
            return
        self.app.adopt_child(started)
        deadline = time.monotonic() + APPEAR_TIMEOUT_S
        suffix = f"-{spec.name}"
        while time.monotonic() < deadline:
            new = [
                p
                for p in list_run_dirs(spec.results_dir)
                if p.name not in before and p.name.endswith(suffix)
            ]
            if new:
                self.app.rescan()
                self.post_message(self.Launched(new[-1]))
                return
            code = started.proc.poll()
            if code is not None:
                # Give a folder created just before exiting one more look.
                new = [
                    p
                    for p in list_run_dirs(spec.results_dir)
                    if p.name not in before and p.name.endswith(suffix)
                ]
                if new:
                    self.app.rescan()
                    self.post_message(self.Launched(new[-1]))
                    return
                self.post_message(
                    self.Failed(
                        "Run did not start",
                        f"{spec.display()}\n\nexited with status {code} before creating a run folder.\n"
                        f"full output: {out}",
                        tail_text(out),
                    )
                )
                return
            time.sleep(0.1)
        self.post_message(
            self.Failed(
                "Run folder did not appear",
                f"n2n-core (pid {started.proc.pid}) is running but no run folder appeared in "
                f"{spec.results_dir} after {APPEAR_TIMEOUT_S:.0f}s. Output: {out}",
                tail_text(out),
            )
        )

    def _start_sweep(self, spec: LaunchSpec) -> None:
        """``sweep ... --detach`` checks every point, writes the sweep and returns at once."""
        res = run_core(spec.args(), timeout=APPEAR_TIMEOUT_S)
        if not res.ok:
            self.post_message(
                self.Failed(
                    "Sweep did not start",
                    f"{spec.display()}\n\n{res.error_line()}",
                    [ln for ln in res.stderr.splitlines() if ln.strip()][:12],
                )
            )
            return
        self.app.rescan()
        self.post_message(self.SweepStarted())

    @dataclass
    class SweepStarted(Message):
        pass

    @on(SweepStarted)
    def _sweep_started(self) -> None:
        from .sweeps import SweepsScreen

        self.launching = False
        self.app.switch_screen(SweepsScreen())

    @on(Launched)
    def _launched(self, event: Launched) -> None:
        from .dashboard import DashboardScreen

        self.launching = False
        self.app.switch_screen(DashboardScreen(event.run_dir))

    @on(Failed)
    def _failed(self, event: Failed) -> None:
        self.launching = False
        self.refresh_command()
        self.query_one("#launch-status", Static).update(Text(event.title, style="bold red"))
        self.app.push_screen(ErrorModal(event.title, event.message, event.lines))
