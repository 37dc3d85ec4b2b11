"""Launch: pick a preset, processes, device, precision and a name; see the exact command."""

from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
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

from n2n_core.config.loader import read_preset_data
from n2n_core.config.overrides import apply_overrides, parse_override
from n2n_core.config.schema import NAME_PATTERN, Device, Precision
from n2n_core.errors import UserError
from n2n_core.runs.folders import list_run_dirs

from ..models import presetform as pf
from ..models.presetfiles import PresetEntry, load_presets
from ..models.procs import (
    LaunchSpec,
    launch_log_path,
    run_core,
    split_overrides,
    start_detached,
    tail_text,
)
from ..widgets.common import ConfirmModal, ErrorModal, MarkedRadioButton
from .base import BaseScreen

DEVICES = get_args(Device)
PRECISIONS = get_args(Precision)
NAME_RE = re.compile(NAME_PATTERN)
APPEAR_TIMEOUT_S = 120.0


def sweep_points(grid: list[str]) -> int | None:
    """How many points a grid makes (None while it does not parse)."""
    from n2n_core.sweeps.plan import parse_grid

    values, _, problems = parse_grid(grid)
    return None if problems else math.prod(len(v) for v in values.values())


def _blames(err_key: str, override_key: str) -> bool:
    return (
        err_key == override_key
        or err_key.startswith(override_key + ".")
        or override_key.startswith(err_key + ".")
    )


def launch_problems(
    preset_path: Path,
    data: dict[str, Any],
    overrides: list[str],
    fields: dict[str, tuple[str, Any]],
) -> list[str]:
    """Every problem of the preset as it would run, each blamed on where its value came from.

    ``fields`` maps a preset key set from a Launch field to (that field's label, value).
    A value from an override is blamed on ``--set KEY=VALUE``, never on the preset file.
    """
    data = copy.deepcopy(data)
    problems = []
    keys: dict[str, str] = {}
    for text in overrides:
        try:
            path, _ = parse_override(text)
            apply_overrides(data, [text])
        except UserError as e:
            problems.append(str(e))
            continue
        keys[".".join(path)] = text
    for key, (_, value) in fields.items():
        pf.set_path(data, tuple(key.split(".")), value)
    _, msgs = pf.validate(data)
    for key, msg in msgs.items():
        field = next((label for k, (label, _) in fields.items() if _blames(key, k)), None)
        override = next((o for k, o in keys.items() if _blames(key, k)), None)
        if override is not None:
            problems.append(
                f"--set {override}: {msg}" if key in keys else f"--set {override}: {key}: {msg}"
            )
        elif field is not None:
            problems.append(f"{field}: {msg}")
        else:
            problems.append(f"{preset_path}: {key or '(preset)'}: {msg}")
    return problems


class LaunchScreen(BaseScreen):
    """Builds an ``n2n-core run`` command and starts it detached, after a confirmation."""

    HELP = (
        "The command shown at the bottom is exactly what is started, as a separate "
        "process: closing the TUI does not stop it. ctrl+l (or the button) asks once "
        "more, showing the command; Enter in a field only moves to the next one. Once "
        "its run folder appears the dashboard opens. A sweep grid (KEY=V1,V2 …) starts "
        "a sweep instead, and 'queue' waits until the devices are free (no other sweep "
        "or queued run holds them); both open the Sweeps screen."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+l", "launch", "Launch…"),
    ]

    @dataclass
    class Launched(Message):
        run_dir: Path

    @dataclass
    class Failed(Message):
        title: str
        message: str
        lines: list[str]

    @dataclass
    class DevicesKnown(Message):
        pass

    def __init__(self, preset: Path | None = None, name: str = ""):
        super().__init__()
        self.initial = preset
        self.initial_name = name
        self.entries: list[PresetEntry] = []
        self.launching = False
        self._defaults_of: str | None = None
        self._pending: dict[str, Any] | None = None
        self._listed: set[Path] = set()

    def _entries(self) -> list[PresetEntry]:
        entries = [e for e in load_presets(self.app.presets_dir) if e.preset is not None]
        self._listed = {e.path for e in entries}
        memory = self.app.launch_memory
        if self.initial is None and memory:
            # What was launched last, a run's own preset.yaml (relaunch) included.
            self.initial = Path(memory["preset"])
            self._pending = memory
        if self.initial and all(e.path != self.initial for e in entries):
            # A run's own preset.yaml ("relaunch with changes"), outside the presets dir.
            try:
                data = read_preset_data(self.initial)
                entries.insert(0, PresetEntry(self.initial, data, pf.validate(data)[0], None))
            except UserError:
                pass
        return [e for e in entries if e.preset is not None]

    def _label(self, e: PresetEntry) -> str:
        """A preset's file name and where it comes from; a file from elsewhere (a run's
        preset.yaml) by its path."""
        if e.path == self.initial and e.path not in self._listed:
            return str(e.path)
        return f"{e.path.name} ({e.source_label})"

    def compose(self) -> ComposeResult:
        self.entries = self._entries()
        options = [
            (f"{self._label(e)}  —  {e.preset.description.strip() or e.preset.name}", str(e.path))
            for e in self.entries
        ]
        values = [v for _, v in options]
        # A new user's first launch should be the one that finishes in minutes.
        quick = [v for v in values if v.endswith("/quickstart.yaml") or v == "quickstart.yaml"]
        fallback = quick[0] if quick else (values[0] if values else Select.NULL)
        initial = str(self.initial) if self.initial else fallback
        if initial not in values:
            initial = fallback
            self._pending = None
        blink = not self.app.is_headless
        yield Header()
        with VerticalScroll(id="launch-form"):
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
                    yield MarkedRadioButton("1", value=True, id="nproc-1")
                    yield MarkedRadioButton("8", id="nproc-8")
                    yield MarkedRadioButton("custom", id="nproc-custom")
                custom = Input("2", placeholder="N", id="launch-nproc-n", classes="field-short")
                custom.cursor_blink = blink
                yield custom
            with Horizontal(classes="field-row"):
                yield Label("device", classes="field-label")
                yield Select(
                    [(d, d) for d in self._device_options()],
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
                    self.initial_name,
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
            yield Static("", id="launch-sweep-note", classes="field-warning")
            with Horizontal(classes="field-row"):
                yield Label("start", classes="field-label")
                with RadioSet(id="launch-when"):
                    yield MarkedRadioButton("now", value=True, id="when-now")
                    yield MarkedRadioButton("queue (when devices are free)", id="when-queue")
            yield Static("", id="launch-error", classes="field-error")
            yield Static("", id="launch-warning", classes="field-warning")
            yield Label("command", classes="dialog-sub")
            yield Static("", id="launch-command", classes="command-box")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch… (ctrl+l)", variant="primary", id="launch-go")
            yield Static("", id="launch-status", classes="info-line")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "launch"
        self.sub_title = f"results: {self.app.results_dir}"
        if not self.entries:
            self.query_one("#launch-error", Static).update(
                Text(
                    f"no valid presets (built-in or in {self.app.presets_dir}); "
                    "create one in Presets (p)"
                )
            )
        self._apply_preset_defaults()
        self.query_one("#launch-preset", Select).focus()
        if self.app.devices is None:
            self.probe()

    # -- devices present -------------------------------------------------------------

    def _device_options(self) -> list[str]:
        present = self.app.devices
        if not present:
            return list(DEVICES)
        return ["auto", *[d for d in present if d in DEVICES]]

    @work(thread=True, exclusive=True, group="probe", exit_on_error=False, name="device probe")
    def probe(self) -> None:
        found = self.app.device_probe()
        devices = found.get("devices")
        if isinstance(devices, list) and devices:
            self.app.devices = [str(d) for d in devices]
        cores = found.get("cpu_cores")
        if isinstance(cores, int) and cores > 0:
            self.app.cpu_cores = cores
        self.post_message(self.DevicesKnown())

    @on(DevicesKnown)
    def _devices_known(self) -> None:
        select = self.query_one("#launch-device", Select)
        current = select.value
        options = self._device_options()
        select.set_options([(d, d) for d in options])
        select.value = current if current in options else "auto"
        self.refresh_command()

    # -- the spec ------------------------------------------------------------------

    def entry(self) -> PresetEntry | None:
        value = self.query_one("#launch-preset", Select).value
        return next((e for e in self.entries if str(e.path) == value), None)

    def _apply_preset_defaults(self) -> None:
        e = self.entry()
        self._defaults_of = str(e.path) if e else None
        if e is None or e.preset is None:
            self.refresh_command()
            return
        rt = e.preset.runtime
        device = self.query_one("#launch-device", Select)
        device.value = rt.device if rt.device in self._device_options() else "auto"
        self.query_one("#launch-precision", Select).value = rt.precision
        button = {1: "#nproc-1", 8: "#nproc-8"}.get(rt.nproc, "#nproc-custom")
        if button == "#nproc-custom":
            self.query_one("#launch-nproc-n", Input).value = str(rt.nproc)
        self.query_one(button, RadioButton).value = True
        self.query_one("#launch-name", Input).placeholder = f"default: {e.preset.name}"
        memory, self._pending = self._pending, None
        if memory and memory["preset"] == str(e.path):
            self._restore(memory)
        self.refresh_command()

    def _restore(self, m: dict[str, Any]) -> None:
        if m["device"] in self._device_options():
            self.query_one("#launch-device", Select).value = m["device"]
        self.query_one("#launch-precision", Select).value = m["precision"]
        self.query_one("#launch-nproc-n", Input).value = m["custom"]
        self.query_one(f"#{m['nproc']}", RadioButton).value = True
        self.query_one("#launch-name", Input).value = m["name"]
        self.query_one("#launch-overrides", Input).value = m["overrides"]
        # A grid is never brought back: a plain launch after a sweep stays a plain launch.

    def _remember(self) -> None:
        preset = self.query_one("#launch-preset", Select).value
        if preset is Select.NULL:
            return
        pressed = self.query_one("#launch-nproc", RadioSet).pressed_button
        self.app.launch_memory = {
            "preset": str(preset),
            "nproc": pressed.id if pressed and pressed.id else "nproc-1",
            "custom": self.query_one("#launch-nproc-n", Input).value,
            "device": str(self.query_one("#launch-device", Select).value),
            "precision": str(self.query_one("#launch-precision", Select).value),
            "name": self.query_one("#launch-name", Input).value,
            "overrides": self.query_one("#launch-overrides", Input).value,
        }

    def nproc(self) -> int | None:
        pressed = self.query_one("#launch-nproc", RadioSet).pressed_button
        bid = pressed.id if pressed else "nproc-1"
        if bid == "nproc-custom":
            text = self.query_one("#launch-nproc-n", Input).value.strip()
            return int(text) if text.isdigit() and int(text) > 0 else None
        return 8 if bid == "nproc-8" else 1

    def spec(self) -> tuple[LaunchSpec | None, list[str]]:
        """The command to start, or None and every problem that stops it."""
        e = self.entry()
        if e is None or e.preset is None or e.data is None:
            return None, ["pick a preset"]
        rt = e.preset.runtime
        problems = []
        n = self.nproc()
        if n is None:
            problems.append("processes: enter a whole number ≥ 1")
        name = self.query_one("#launch-name", Input).value.strip() or e.preset.name
        if not NAME_RE.match(name):
            problems.append(
                "name: letters, digits, . _ - (up to 64, starting with a letter or digit)"
            )
        device = str(self.query_one("#launch-device", Select).value)
        precision = str(self.query_one("#launch-precision", Select).value)
        overrides = split_overrides(self.query_one("#launch-overrides", Input).value)
        fields = {
            "runtime.device": ("device", device),
            "runtime.precision": ("precision", precision),
        }
        if NAME_RE.match(name):  # else already said, in words
            fields["name"] = ("name", name)
        if n is not None:
            fields["runtime.nproc"] = ("processes", n)
        problems += launch_problems(e.path, e.data, overrides, fields)
        grid = split_overrides(self.query_one("#launch-grid", Input).value)
        problems += [
            f"sweep grid: {g!r} is not KEY=V1,V2"
            for g in grid
            if "=" not in g or not g.partition("=")[2].strip()
        ]
        if problems:
            return None, problems
        when = self.query_one("#launch-when", RadioSet).pressed_button
        spec = LaunchSpec(
            preset=e.path,
            name=name,
            nproc=n if n != rt.nproc else None,
            device=device if device != rt.device else None,
            precision=precision if precision != rt.precision else None,
            overrides=overrides,
            results_dir=self.app.results_dir,
            grid=grid,
            queue=bool(when and when.id == "when-queue"),
        )
        return spec, []

    def warnings(self) -> list[str]:
        """What is allowed but probably not meant."""
        out = []
        e = self.entry()
        device = str(self.query_one("#launch-device", Select).value)
        if e and e.preset and e.preset.runtime.device not in self._device_options():
            out.append(f"the preset asks for device {e.preset.runtime.device}, not present here")
        on_cpu = device == "cpu" or (device == "auto" and self.app.devices == ["cpu"])
        n, cores = self.nproc(), self.app.cpu_cores
        if on_cpu and n and cores and n > cores:
            out.append(
                f"{n} processes on {cores} CPU core{'s' if cores > 1 else ''}: each gets less "
                "than a core, so this trains slower than fewer processes would"
            )
        return out

    def refresh_command(self) -> None:
        spec, problems = self.spec()
        warnings = self.warnings()
        error = self.query_one("#launch-error", Static)
        error.update(Text("\n".join(problems)))
        error.display = bool(problems)
        warning = self.query_one("#launch-warning", Static)
        warning.update(Text("\n".join(warnings)))
        warning.display = bool(warnings)
        cmd = self.query_one("#launch-command", Static)
        cmd.update(Text(spec.display() if spec else "—", style="bold"))
        go = self.query_one("#launch-go", Button)
        go.disabled = spec is None or self.launching
        grid = split_overrides(self.query_one("#launch-grid", Input).value)
        note = self.query_one("#launch-sweep-note", Static)
        note.display = bool(grid)
        if grid:
            n = sweep_points(grid)
            size = f"a sweep of {n} points" if n else "a sweep"
            note.update(
                Text(
                    f"⚠ sweep grid set: this starts {size}, not one run (clear the grid for one run)"
                )
            )
        go.label = "Start sweep… (ctrl+l)" if grid else "Launch… (ctrl+l)"

    @on(Select.Changed, "#launch-preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        if str(event.value) != self._defaults_of:
            self._apply_preset_defaults()

    @on(Select.Changed)
    @on(Input.Changed)
    @on(RadioSet.Changed)
    def _changed(self) -> None:
        self.refresh_command()

    @on(Input.Submitted)
    def _next_field(self) -> None:
        # Enter in a text field never starts a run: it moves on, as in any form.
        self.focus_next()

    @on(Button.Pressed, "#launch-go")
    def _go(self) -> None:
        self.action_launch()

    # -- launching -----------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_launch(self) -> None:
        spec, problems = self.spec()
        if spec is None:
            self.notify("\n".join(problems), title="Cannot launch", severity="error")
            return
        if self.launching:
            return
        body = f"{spec.display()}\n\nThis starts as a separate process; closing the TUI does not stop it."
        warnings = self.warnings()
        if warnings:
            body += "\n\n" + "\n".join(f"⚠ {w}" for w in warnings)

        def answered(yes: bool | None) -> None:
            if yes:
                self._remember()  # what was launched, nothing typed and left
                self.launching = True
                self.refresh_command()
                self.query_one("#launch-status", Static).update(Text(f"starting: {spec.display()}"))
                self.start(spec)

        what = "Start this sweep?" if spec.is_sweep else "Launch this run?"
        self.app.push_screen(ConfirmModal(what, body, yes="Launch"), answered)

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False, name="launch")
    def start(self, spec: LaunchSpec) -> None:
        if spec.is_sweep:
            self._start_sweep(spec)
            return
        before = {p.name for p in list_run_dirs(spec.results_dir)}
        out = launch_log_path(spec.results_dir, spec.name)
        try:
            started = start_detached(spec.args(), out)
        except (OSError, UserError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else e
            self.post_message(self.Failed("Launch failed", f"cannot start n2n-core: {why}", []))
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
