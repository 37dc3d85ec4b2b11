"""The preset form: one row per schema field, validated as you type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from n2n_core.config.schema import Preset

from ...models import presetform as pf
from ..common.toggles import WordSwitch


class FieldRow(Horizontal):
    """Label, editor and the field's validation message."""

    DEFAULT_CSS = """
    FieldRow { height: auto; }
    """

    def __init__(self, spec: pf.FieldSpec, value: Any, blink: bool):
        super().__init__(classes="field-row")
        self.spec = spec
        self.value = value
        self.blink = blink

    def compose(self) -> ComposeResult:
        spec = self.spec
        # A nested key reads with its parent (augment.flips), the section being shown around it.
        yield Label(".".join(spec.path[1:]) or spec.path[0], classes="field-label")
        wid = spec.widget_id
        if spec.kind == "select":
            options = [(o, o) for o in spec.options]
            yield Select(
                options,
                value=str(self.value) if self.value is not None else Select.NULL,
                allow_blank=spec.optional,
                id=wid,
                classes="field-editor",
            )
        elif spec.kind == "bool":
            yield WordSwitch(value=bool(self.value), id=wid, classes="field-switch")
        else:
            placeholder = {"range": "min, max", "int": "integer", "float": "number"}.get(
                spec.kind if spec.kind == "range" else spec.number, ""
            )
            if spec.optional:
                placeholder = (placeholder + " (empty: none)").strip()
            inp = Input(
                pf.to_text(self.value), placeholder=placeholder, id=wid, classes="field-editor"
            )
            inp.cursor_blink = self.blink
            yield inp
        yield Static("", classes="field-error", id=f"err-{wid}")


class PresetForm(VerticalScroll):
    """Fields generated from :class:`Preset`; posts :class:`PresetForm.Changed` on each edit."""

    @dataclass
    class Changed(Message):
        form: PresetForm
        preset: Preset | None
        errors: dict[str, str]

    def __init__(self, original: dict[str, Any], base: Preset, **kwargs: Any):
        super().__init__(**kwargs)
        self.original = original
        self.base = base
        self.values = pf.field_values(base)
        self.noise_type = base.noise.type
        self.specs: dict[str, pf.FieldSpec] = {}
        self.preset: Preset | None = base
        self.errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        blink = not self.app.is_headless
        sections = pf.sections(self.base)
        half = {"general", pf.NOISE_KEY, "data"}
        with Horizontal(id="form-columns"):
            for column in (half, None):
                with Vertical(classes="form-column"):
                    for section, specs in sections:
                        if (section in half) != (column is not None):
                            continue
                        yield from self._section(section, specs, blink)

    def _section(self, section: str, specs: list[pf.FieldSpec], blink: bool) -> ComposeResult:
        with Vertical(classes="form-section", id=f"sec-{section}") as box:
            box.border_title = section
            if section == pf.NOISE_KEY:
                yield Static("", classes="form-doc", id="noise-doc")
                yield Vertical(id="noise-fields")
            if section == "data":
                # Where the training data comes from decides the prefix of data.train.
                mode = pf.data_mode(str(self.values.get("data.train") or ""))
                with Horizontal(classes="field-row"):
                    yield Label("mode", classes="field-label")
                    yield Select(
                        [(label, key) for key, label in pf.DATA_MODES.items()],
                        value=mode,
                        allow_blank=False,
                        id="data-mode",
                        classes="field-editor",
                    )
            for spec in specs:
                self.specs[spec.widget_id] = spec
                yield FieldRow(spec, self.values.get(spec.key), blink)
            yield Static("", classes="field-error section-error", id=f"err-sec-{section}")

    async def on_mount(self) -> None:
        for box in self.query(".section-error"):
            box.display = False
        await self._mount_noise()

    async def _mount_noise(self) -> None:
        box = self.query_one("#noise-fields", Vertical)
        await box.remove_children()
        blink = not self.app.is_headless
        specs = pf.noise_fields(self.noise_type)
        for spec in specs:
            self.specs[spec.widget_id] = spec
            if spec.key not in self.values:
                self.values[spec.key] = None
        defaults = pf.noise_models()[self.noise_type]().model_dump(mode="json")
        rows = []
        for spec in specs:
            value = self.values.get(spec.key)
            if value is None and spec.path[-1] in defaults:
                value = defaults[spec.path[-1]]
                self.values[spec.key] = value
            rows.append(FieldRow(spec, value, blink))
        await box.mount_all(rows)
        doc = specs[0].doc if specs else ""
        self.query_one("#noise-doc", Static).update(doc)

    # -- editing -------------------------------------------------------------------

    async def _edited(self, widget_id: str | None, value: Any) -> None:
        spec = self.specs.get(widget_id or "")
        if spec is None:
            return
        if spec.kind == "text" or spec.kind == "range":
            value = pf.from_text(spec, value)
            before = pf.get_path(self.base.to_dict(), spec.path)
            if isinstance(before, str) and isinstance(value, str) and value == pf.to_text(before):
                value = before  # an Input cannot show the newlines of a YAML block; that is no edit
        if spec.key in self.values and _same(self.values[spec.key], value):
            # Each editor says its first value when it mounts: that is no edit, and
            # validating the whole preset once per field made the editor slow to open.
            return
        self.values[spec.key] = value
        if spec.key == "noise.type" and value != self.noise_type and isinstance(value, str):
            # A new noise model: its parameters start at their defaults.
            for key in [k for k in self.values if k.startswith("noise.") and k != "noise.type"]:
                del self.values[key]
            self.noise_type = value
            await self._mount_noise()
        self.revalidate()

    @on(Input.Changed)
    async def _input(self, event: Input.Changed) -> None:
        event.stop()
        await self._edited(event.input.id, event.value)

    @on(Select.Changed)
    async def _select(self, event: Select.Changed) -> None:
        event.stop()
        value = None if event.value is Select.NULL else event.value
        if event.select.id == "data-mode":
            self._data_mode(str(value))
            return
        await self._edited(event.select.id, value)

    def _data_mode(self, mode: str) -> None:
        """Rewrite data.train's prefix for the chosen mode; own data means no synthetic noise."""
        current = str(self.values.get("data.train") or "")
        if pf.data_mode(current) == mode:
            return
        self.query_one("#f-data-train", Input).value = pf.with_data_mode(current, mode)
        noise = self.query_one("#f-noise-type", Select)
        if mode in ("pairs", "noisy"):
            noise.value = "none"
        elif noise.value == "none":
            noise.value = "gaussian"

    @on(Switch.Changed)
    async def _switch(self, event: Switch.Changed) -> None:
        event.stop()
        await self._edited(event.switch.id, event.value)

    def data(self) -> dict[str, Any]:
        values = {k: v for k, v in self.values.items() if v is not None or self._optional(k)}
        return pf.build_data(self.original, values, self.noise_type)

    def _optional(self, key: str) -> bool:
        return any(s.key == key and s.optional for s in self.specs.values())

    def revalidate(self) -> None:
        self.preset, self.errors = pf.validate(self.data())
        sections = {s for s, _ in pf.sections(self.base)}
        shown: set[str] = set()
        # One walk of the form for every message box (a query per field was quadratic).
        boxes = {w.id: w for w in self.query(".field-error").results(Static) if w.id}
        for wid, spec in self.specs.items():
            err = boxes.get(f"err-{wid}")
            if err is not None:
                msg = self.errors.get(spec.key, "")
                err.update(Text(msg))
                if msg:
                    shown.add(spec.key)
                if err.parent is not None:
                    err.parent.set_class(bool(msg), "-invalid")
        for section in sections:
            msgs = [
                m
                for k, m in self.errors.items()
                if k not in shown
                and (
                    k.split(".")[0] == section
                    or (section == "general" and k.split(".")[0] not in sections)
                )
            ]
            box = boxes[f"err-sec-{section}"]
            box.update(Text("\n".join(msgs)))
            box.display = bool(msgs)
        self.post_message(self.Changed(self, self.preset, self.errors))

    def changed_keys(self) -> list[str]:
        if self.preset is None:
            return []
        old, new = self.base.to_dict(), self.preset.to_dict()
        keys = []
        if old[pf.NOISE_KEY]["type"] != new[pf.NOISE_KEY]["type"]:
            keys.append("noise.type")
        for spec in self.specs.values():
            if spec.key == "noise.type":
                continue
            before = pf.effective_value(self.base, old, spec.path)
            after = pf.effective_value(self.preset, new, spec.path)
            if before != after and widget_live(self, spec):
                keys.append(spec.key)
        return sorted(set(keys))


def widget_live(form: Widget, spec: pf.FieldSpec) -> bool:
    return bool(form.query(f"#{spec.widget_id}"))


def _same(a: Any, b: Any) -> bool:
    """Whether an editor's value is the one the form holds: the same value, or the text
    an Input shows for it (``"3"`` for 3, ``"0.0, 50.0"`` for a range)."""
    if isinstance(b, str) and not isinstance(a, str):
        return a is not None and pf.to_text(a) == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    try:
        return (
            bool(a == b) and type(a) in (type(b), int, float) and type(b) in (type(a), int, float)
        )
    except Exception:  # noqa: BLE001 - values of any kind compared
        return False
