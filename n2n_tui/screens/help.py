"""The help text: what the current screen is for, and every key that works there."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen

GENERAL = [
    ("?", "this help"),
    ("q", "quit (runs keep going: they are separate processes)"),
    ("escape", "back"),
    ("tab / shift+tab", "move between fields"),
    ("ctrl+p", "command palette (themes: dark / light)"),
]


# Keys whose Textual names are not what a keyboard shows.
KEY_NAMES = {"space": "space", "escape": "escape", "enter": "enter", "tab": "tab"}


def key_name(screen: Screen, binding: Binding) -> str:
    """A key as the keyboard shows it: ``[`` for left_square_bracket, ``^s`` for ctrl+s."""
    if binding.key in KEY_NAMES and not binding.key_display:
        return KEY_NAMES[binding.key]
    return screen.app.get_key_display(binding)


def help_text(screen: Screen) -> Text:
    t = Text()
    name = type(screen).__name__.replace("Screen", "") or "n2n"
    t.append(f"{name}\n", style="bold underline")
    about = getattr(screen, "HELP", "")
    if about:
        t.append(about + "\n")
    t.append("\nKeys here\n", style="bold")
    seen = set()
    for _key, binding in screen._bindings:
        # Textual's own bindings (focus, copy) are not this screen's keys.
        if (
            binding.action in seen
            or binding.system
            or binding.action.startswith(("app.", "screen."))
        ):
            continue
        if screen.check_action(binding.action.split("(")[0], ()) is False:
            continue
        seen.add(binding.action)
        t.append(f"  {key_name(screen, binding):<15} ", style="bold")
        t.append(f"{binding.description or binding.action}\n")
    t.append("\nEverywhere\n", style="bold")
    for key, desc in GENERAL:
        t.append(f"  {key:<15} ", style="bold")
        t.append(f"{desc}\n")
    t.append(
        "\nThe TUI is a view over run folders: runs started with `n2n-core run` "
        "in a shell or on a cluster node show up here the same way.\n",
        style="italic",
    )
    return t
