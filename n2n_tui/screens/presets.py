"""Presets: the built-in presets and the local folder's, and the editor that saves new ones
(always into the local folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Header, Input, Label, Static

from n2n_core.config.schema import Preset

from ..models import presetform as pf
from ..models.presetfiles import PresetEntry, load_presets
from ..widgets.common import Col, ConfirmModal, RunsTable
from ..widgets.presets import PresetForm
from ..widgets.presets.diff import diff_text
from .base import BaseScreen


class PresetsScreen(BaseScreen):
    """The preset files; edit one (saved as a new file) or launch it."""

    HELP = (
        "The built-in presets (shipped with n2n) and the preset files (YAML) of the "
        "local presets folder, which add to them and override a built-in one of the "
        "same name (Source). e opens the editor, which checks every field against the "
        "schema as you type and saves a new preset into the local folder after showing "
        "the diff. l opens Launch with the preset selected."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("e,enter", "edit", "Edit"),
        Binding("l", "launch", "Launch"),
        Binding("g", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[PresetEntry] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunsTable(id="presets-table")
        yield Static("", id="preset-detail", classes="detail-box")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "presets"
        self.sub_title = f"built-in and {self.app.presets_dir}/"
        table = self.query_one(RunsTable)
        # A narrow terminal drops Name (the file's own name says it), Task and Targets,
        # then Steps; the description takes whatever is left.
        table.set_columns(
            [
                Col("File", "File", 22, min=18),
                Col("Source", "Source", 8, min=6),
                Col("Name", "Name", 20, min=10, drop=1),
                Col("Task", "Task", 5, drop=1),
                Col("Noise", "Noise", 10, min=8),
                Col("Targets", "Targets", 7, drop=1),
                Col("Steps", "Steps", 8, drop=3),
                Col("Description", "Description", 56, min=20, grow=-1),
            ]
        )
        self.reload()
        table.focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="presets", exit_on_error=False, name="load presets")
    def _load(self) -> None:
        # Parsing user files is kept off the UI thread: however large or hostile a
        # preset is, the screen stays responsive while it is read.
        entries = load_presets(self.app.presets_dir)
        self.app.call_from_thread(self._show, entries)

    def _show(self, entries: list[PresetEntry]) -> None:
        if not self.is_mounted:  # left before the files were read
            return
        self.entries = entries
        rows = []
        err_style = f"bold {self.app.current_theme.error}"
        for e in self.entries:
            if e.preset is None:
                cells = (
                    e.path.name,
                    e.source_label,
                    Text("invalid", style=err_style),
                    "",
                    "",
                    "",
                    "",
                    e.error or "",
                )
            else:
                p = e.preset
                cells = (
                    e.path.name,
                    e.source_label,
                    p.name,
                    p.task,
                    p.noise.type,
                    p.targets,
                    f"{p.train.steps:,}",
                    p.description,
                )
            rows.append((e.path.name, cells))
        self.query_one(RunsTable).sync(rows)
        if not self.entries:
            self.query_one("#preset-detail", Static).update(
                Text(f"no presets in {self.app.presets_dir} (expected *.yaml files)")
            )
        else:
            self._detail()

    @on(RunsTable.RowHighlighted)
    def _detail(self) -> None:
        e = self.selected()
        box = self.query_one("#preset-detail", Static)
        if e is None:
            return
        if e.error:
            box.update(Text(e.error, style=self.app.current_theme.error or "red"))
        else:
            try:
                box.update(Text(e.path.read_text(encoding="utf-8").rstrip()))
            except (OSError, UnicodeDecodeError) as err:
                box.update(Text(f"{e.path}: {err}"))

    def selected(self) -> PresetEntry | None:
        key = self.query_one(RunsTable).current_key()
        return next((e for e in self.entries if e.path.name == key), None)

    @on(RunsTable.RowSelected)
    def _selected(self) -> None:
        self.action_edit()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.reload()

    def action_edit(self) -> None:
        e = self.selected()
        if e is None:
            return
        if e.preset is None or e.data is None:
            self.notify(
                e.error or "invalid preset", title="Cannot edit", severity="error", markup=False
            )
            return
        self.app.push_screen(PresetEditorScreen(e.path, e.data, e.preset, self.app.presets_dir))

    def action_launch(self) -> None:
        from .launch import LaunchScreen

        e = self.selected()
        self.app.push_screen(LaunchScreen(e.path if e else None))


class PresetEditorScreen(BaseScreen):
    """A form generated from the preset schema; saves a new preset after showing the diff."""

    HELP = (
        "Every key of the preset schema. Messages appear beside a field as soon as "
        "its value is wrong. ctrl+s saves a new preset file (the original is never "
        "overwritten) into the local presets folder after showing the diff from the original."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "save", "Save as new"),
    ]

    def __init__(self, path: Path, data: dict[str, Any], preset: Preset, folder: Path):
        super().__init__()
        self.path, self.data, self.preset = path, data, preset
        self.folder = (
            folder  # the local presets folder: new presets go there, never beside a built-in
        )

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="editor-status", classes="info-line")
        yield PresetForm(self.data, self.preset, id="preset-form")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "edit preset"
        self.sub_title = str(self.path)
        self._status(self.query_one(PresetForm))

    @on(PresetForm.Changed)
    def _changed(self, event: PresetForm.Changed) -> None:
        self._status(event.form)

    def _status(self, form: PresetForm) -> None:
        theme = self.app.current_theme
        t = Text()
        if form.errors:
            n = len(form.errors)
            t.append(f"✗ {n} problem{'s' if n > 1 else ''}", style=f"bold {theme.error}")
            t.append("  — fix them to save")
        else:
            t.append("✓ valid", style=f"bold {theme.success}")
            changed = form.changed_keys()
            t.append(f"  · {len(changed)} change{'s' if len(changed) != 1 else ''}")
            if changed:
                t.append(": " + ", ".join(changed[:6]) + (" …" if len(changed) > 6 else ""))
            t.append("  · ctrl+s to save as a new preset")
        self.query_one("#editor-status", Static).update(t)

    def action_back(self) -> None:
        form = self.query_one(PresetForm)
        if not (form.changed_keys() or form.errors):
            self.app.pop_screen()
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.app.pop_screen()

        n = len(form.changed_keys()) + len(form.errors)
        body = (
            f"{n} unsaved edit{'s' if n != 1 else ''} to {self.path.name} will be lost.\n\n"
            "ctrl+s saves them as a new preset instead."
        )
        self.app.push_screen(
            ConfirmModal("Discard changes?", body, yes="Discard", danger=True), answered
        )

    def action_save(self) -> None:
        form = self.query_one(PresetForm)
        if form.preset is None:
            self.notify("fix the fields marked in red first", title="Not saved", severity="error")
            return
        new_data = pf.edited_data(self.data, self.preset, form.preset)
        default_name = (
            form.preset.name if form.preset.name != self.preset.name else f"{self.path.stem}-2"
        )
        target = self.folder / f"{default_name}.yaml"

        def saved(path: Path | None) -> None:
            if path:
                self.notify(f"saved {path}", title="Preset saved", markup=False)
                self.app.pop_screen()

        self.app.push_screen(
            SavePresetModal(self.path, self.data, new_data, target, self.folder), saved
        )


def _one_line(text: Any) -> str:
    return pf.to_text(text) if isinstance(text, str) else ""


class SavePresetModal(ModalScreen[Path | None]):
    """File name (which is also the new preset's name), description, and the diff from the original."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        original: Path,
        old: dict[str, Any],
        new: dict[str, Any],
        target: Path,
        folder: Path,
    ):
        super().__init__(classes="dialog")
        self.original, self.old, self.new, self.target = original, old, new, target
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -wide"):
            yield Label("Save as a new preset", classes="dialog-title")
            with Horizontal(classes="field-row"):
                yield Label("file", classes="field-label")
                yield Input(str(self.target), id="save-path", classes="field-editor -wide")
            with Horizontal(classes="field-row"):
                yield Label("description", classes="field-label")
                yield Input(
                    _one_line(self.old.get("description")),
                    id="save-desc",
                    classes="field-editor -wide",
                )
            yield Static("", id="save-desc-warning", classes="field-warning")
            yield Static("", id="save-error", classes="field-error")
            yield Label(Text(f"changes from {self.original.name}:"), classes="dialog-sub")
            with VerticalScroll(classes="dialog-scroll"):
                yield Static("", id="save-diff")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (enter)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_resize(self) -> None:
        # The diff gets what the window leaves, so the buttons stay on a 24-row screen.
        chrome = 17
        rows = max(3, int(self.size.height * 0.9) - chrome)
        self.query_one(".dialog-scroll").styles.max_height = rows

    def on_mount(self) -> None:
        self.query_one("#save-error", Static).display = False
        for inp in self.query(Input):
            inp.cursor_blink = not self.app.is_headless
        self.query_one("#save-path", Input).focus()
        self._refresh()

    def path(self) -> Path | None:
        text = self.query_one("#save-path", Input).value.strip()
        if not text:
            return None
        path = Path(text)
        if path.suffix not in (".yaml", ".yml"):
            path = path.with_name(path.name + ".yaml")
        if not path.is_absolute() and path.parent == Path("."):
            path = self.folder / path
        return path

    def new_data(self) -> dict[str, Any]:
        """The edited preset, named after its file, with the description as typed."""
        data = dict(self.new)
        path = self.path()
        if path is not None:
            data["name"] = path.stem
        desc = self.query_one("#save-desc", Input).value.strip()
        old = self.old.get("description")
        if isinstance(old, str) and desc == _one_line(old):
            desc = old  # untouched: keep the original's line breaks (no diff)
        if desc or "description" in self.old:
            data["description"] = desc
        return data

    def _refresh(self) -> None:
        new = self.new_data()
        lines = pf.diff(pf.dump(self.old), pf.dump(new), self.original.name, "new preset")
        self.query_one("#save-diff", Static).update(
            diff_text(lines, self.app) if lines else "no changes (saves a copy)"
        )
        # A description states what the original does (its steps, time, PSNR); after
        # other edits it probably no longer fits.
        others = {k for k in set(new) | set(self.old) if k not in ("name", "description")}
        edited = any(new.get(k) != self.old.get(k) for k in others)
        desc = _one_line(new.get("description"))
        same = desc == _one_line(self.old.get("description"))
        warning = (
            f"the description is still that of {self.original.name}; does it fit the edited preset?"
            if edited and same and desc
            else ""
        )
        box = self.query_one("#save-desc-warning", Static)
        box.update(Text(warning))
        box.display = bool(warning)

    @on(Input.Changed)
    def _changed(self) -> None:
        self._refresh()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.save()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.save()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _error(self, text: str) -> None:
        err = self.query_one("#save-error", Static)
        err.display = True
        err.update(Text(text))

    def save(self) -> None:
        path = self.path()
        if path is None:
            self._error("enter a file name")
            return
        if path.exists():
            self._error(f"{path} exists; presets are saved as new files — pick another name")
            return
        self.write(path, self.new_data())

    @work(thread=True, exclusive=True, group="save", exit_on_error=False, name="save preset")
    def write(self, path: Path, data: dict[str, Any]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as f:
                f.write(pf.dump(data))
        except OSError as e:
            self.app.call_from_thread(self._error, f"{path}: {e.strerror or e}")
            return
        self.app.call_from_thread(self.dismiss, path)
