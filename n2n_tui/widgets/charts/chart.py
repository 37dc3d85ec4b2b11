"""The chart widgets: a titled braille chart and a colour legend."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import App
from textual.widget import Widget
from textual.widgets import Static

from .braille import Line, render_chart

# Series colours by role, resolved against the current theme so that both dark
# and light terminals get readable lines.
ROLES = ("primary", "warning", "success", "error", "accent", "secondary")


def theme_colour(app: App, role: str) -> str:
    theme = app.current_theme
    value = getattr(theme, role, None) or theme.primary
    return value


def muted_colour(app: App) -> str:
    return "grey62" if app.current_theme.dark else "grey42"


class Chart(Widget):
    """A braille line chart that fills its box; redraws only when told or resized."""

    DEFAULT_CSS = """
    Chart {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        padding: 0 1 0 0;
    }
    """

    def __init__(
        self,
        title: str,
        *,
        log_y: bool = False,
        empty: str = "waiting for data…",
        id: str | None = None,
        classes: str | None = None,
    ):
        super().__init__(id=id, classes=classes)
        self.border_title = title
        self.log_y = log_y
        self.empty = empty
        self._lines: list[Line] = []
        self._x_range: tuple[float, float] | None = None

    def set_lines(self, lines: Sequence[Line], x_range: tuple[float, float] | None = None) -> None:
        self._lines = list(lines)
        self._x_range = x_range
        self.refresh()

    def render(self) -> Text:
        size = self.content_size
        return render_chart(
            self._lines,
            size.width,
            size.height,
            log_y=self.log_y,
            x_range=self._x_range,
            axis_style=muted_colour(self.app),
            empty=self.empty,
        )


class ChartLegend(Static):
    """``━━ label`` entries in the colours of the lines they name."""

    DEFAULT_CSS = """
    ChartLegend { height: auto; padding: 0 1; }
    """

    def show(self, entries: Sequence[tuple[str, str]]) -> None:
        t = Text()
        for i, (label, colour) in enumerate(entries):
            if i:
                t.append("   ")
            t.append("━━ ", style=colour)
            t.append(label)
        self.update(t)
