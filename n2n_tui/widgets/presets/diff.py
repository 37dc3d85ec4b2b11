"""A unified diff coloured with the theme's success / error colours."""

from __future__ import annotations

from rich.text import Text
from textual.app import App


def diff_text(lines: list[str], app: App) -> Text:
    theme = app.current_theme
    t = Text()
    for line in lines:
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = f"{theme.accent or theme.primary}"
        elif line.startswith("+"):
            style = f"{theme.success}"
        elif line.startswith("-"):
            style = f"{theme.error}"
        else:
            style = ""
        t.append(line + "\n", style=style)
    return t
