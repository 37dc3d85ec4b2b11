"""Small modal dialogs: confirm, error (no tracebacks, just what happened), path input, text."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, Static


class ConfirmModal(ModalScreen[bool]):
    """Yes / no; dismisses with True when confirmed."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(
        self, title: str, body: str, yes: str = "Yes", danger: bool = False, no: str = "Cancel"
    ):
        super().__init__(classes="dialog")
        self.title_text, self.body, self.yes, self.danger = title, body, yes, danger
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            # Bodies quote paths and commands: plain text, never markup.
            yield Static(Text(self.body), classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    f"{self.yes} (y)", variant="error" if self.danger else "primary", id="yes"
                )
                yield Button(f"{self.no} (n)", id="no")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ErrorModal(ModalScreen[None]):
    """What went wrong, in words: a title, a message and optionally the last output lines."""

    BINDINGS = [Binding("escape,enter,q", "dismiss_modal", "Close")]

    def __init__(self, title: str, message: str, lines: list[str] | None = None):
        super().__init__(classes="dialog")
        self.title_text, self.message, self.lines = title, message, lines or []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -error"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(Text(self.message), classes="dialog-body")
            if self.lines:
                yield Label("last output:", classes="dialog-sub")
                with VerticalScroll(classes="dialog-log"):
                    yield Static(Text("\n".join(self.lines)))
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close (esc)", variant="primary", id="close")

    @on(Button.Pressed)
    def _pressed(self) -> None:
        self.dismiss(None)

    def action_dismiss_modal(self) -> None:
        self.dismiss(None)


class TextModal(ModalScreen[None]):
    """Read-only text (help, results)."""

    BINDINGS = [Binding("escape,enter,q,question_mark", "dismiss_modal", "Close")]

    def __init__(self, title: str, body: Text | str):
        super().__init__(classes="dialog")
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -wide -text"):
            yield Label(f"{self.title_text}   (escape closes)", classes="dialog-title")
            with VerticalScroll(classes="dialog-scroll"):
                yield Static(self.body)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close (esc)", variant="primary", id="close")

    def on_resize(self) -> None:
        # The text gets the window's height before it scrolls (a fixed cap made a long
        # help scroll inside a mostly empty window); the rest is the box's chrome. A
        # short terminal drops the padding and the button (escape closes, as it says).
        short = self.size.height < 32
        self.set_class(short, "-short")
        chrome = 6 if short else 11
        rows = max(3, int(self.size.height * (1.0 if short else 0.9)) - chrome)
        self.query_one(".dialog-scroll").styles.max_height = rows

    @on(Button.Pressed)
    def _pressed(self) -> None:
        self.dismiss(None)

    def action_dismiss_modal(self) -> None:
        self.dismiss(None)


class PathSuggester(Suggester):
    """Completes the last path component from the file system."""

    def __init__(self, dirs_only: bool = False):
        super().__init__(use_cache=False, case_sensitive=True)
        self.dirs_only = dirs_only

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        p = Path(value).expanduser()
        parent, stem = (p, "") if value.endswith("/") else (p.parent, p.name)
        try:
            names = sorted(
                c.name + ("/" if c.is_dir() else "")
                for c in parent.iterdir()
                if c.name.startswith(stem) and (c.is_dir() or not self.dirs_only)
            )
        except OSError:
            return None
        names = [n for n in names if not n.startswith(".") or stem.startswith(".")]
        if not names:
            return None
        base = value[: len(value) - len(stem)] if stem else value
        return base + names[0]


class PathModal(ModalScreen[Path | None]):
    """Ask for a path (tab completes); dismisses with the Path, or None when cancelled.

    ``specs``: prefixes of names that are not paths but the engine understands
    (``builtin:``); such a text is passed on as it is, for the engine to judge.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        hint: str,
        value: str = "",
        want_dir: bool = False,
        specs: tuple[str, ...] = (),
    ):
        super().__init__(classes="dialog")
        self.title_text, self.hint, self.value, self.want_dir = title, hint, value, want_dir
        self.specs = specs

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(Text(self.hint), classes="dialog-body")
            yield Input(
                self.value,
                placeholder="path (→ completes)",
                suggester=PathSuggester(dirs_only=self.want_dir),
                id="path",
            )
            yield Static("", id="path-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK (enter)", variant="primary", id="ok")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        inp = self.query_one(Input)
        inp.cursor_blink = not self.app.is_headless
        inp.focus()

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        err = self.query_one("#path-error", Static)
        if not text:
            err.update("enter a path")
            return
        if text.startswith(self.specs) and self.specs:
            self.dismiss(Path(text))
            return
        p = Path(text).expanduser()
        if not p.exists():
            err.update(Text(f"{p}: does not exist"))
        elif self.want_dir and not p.is_dir():
            err.update(Text(f"{p}: not a folder"))
        else:
            self.dismiss(p)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class InputModal(ModalScreen[str | None]):
    """Ask for one line of text (a run's tags, its note); dismisses with it, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, hint: str, value: str = ""):
        super().__init__(classes="dialog")
        self.title_text, self.hint, self.value = title, hint, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(Text(self.hint), classes="dialog-body")
            yield Input(self.value, id="text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK (enter)", variant="primary", id="ok")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        inp = self.query_one(Input)
        inp.cursor_blink = not self.app.is_headless
        inp.focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.dismiss(self.query_one(Input).value)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.query_one(Input).value if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
