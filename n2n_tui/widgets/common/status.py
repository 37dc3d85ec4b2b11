"""Status words and their colours, shared by the run list and the dashboard."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App

_ROLE = {
    "running": "success",
    "finished": "primary",
    "failed": "error",
    "stopped": "warning",
    "interrupted": "warning",
    "corrupt run.json": "error",
    "refused": "error",  # a sweep point whose folder is not its own
    "pruned": "warning",  # a search's trial its pruner stopped early
}


def status_text(app: App, status: str, exit_code: int | None = None) -> Text:
    theme = theme_of(app)
    role = _ROLE.get(status)
    colour = getattr(theme, role) if role else ("grey62" if theme.dark else "grey42")
    word = status
    if status == "failed" and exit_code not in (None, 0):
        word = f"failed ({exit_code})"
    mark = {"running": "● ", "finished": "✓ ", "failed": "✗ ", "stopped": "■ ", "pruned": "✂ "}.get(
        status, "· "
    )
    return Text(mark + word, style=f"bold {colour}" if role else colour)


_themes: dict[str, Any] = {}


def theme_of(app: App) -> Any:
    """``app.current_theme``, looked up once per theme name (Textual parses the name on
    every access; a list of 10,000 runs asks once per row)."""
    name = app.theme
    theme = _themes.get(name)
    if theme is None:
        theme = _themes[name] = app.current_theme
    return theme


def update_if_changed(widget: Any, text: Text) -> bool:
    """``widget.update(text)`` unless it already shows that text: an update lays the
    screen out again, which a dashboard ticking every second must not pay for nothing."""
    old = getattr(widget, "_n2n_shown", None)
    if old == text:
        return False
    widget._n2n_shown = text
    # A widget of fixed height keeps its size whatever it shows, and the same line lengths
    # wrap the same: the clock ticking in a header needs no layout of the screen.
    height = widget.styles.height
    fixed = height is not None and not height.is_auto
    layout = old is None or (not fixed and _line_lengths(old) != _line_lengths(text))
    widget.update(text, layout=layout)
    return True


def _line_lengths(text: Text) -> list[int]:
    return [len(line) for line in text.plain.split("\n")]
