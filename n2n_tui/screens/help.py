"""The help text: what the current screen is for, and every key that works there."""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen

GENERAL = [
    ("?", "this help"),
    ("q", "quit (runs keep going: they are separate processes)"),
    ("escape", "back"),
    ("tab / shift+tab", "move between fields"),
    ("ctrl+p", "command palette (themes: dark / light)"),
]


def help_text(screen: Screen) -> Text:
    t = Text()
    name = type(screen).__name__.replace("Screen", "") or "n2n"
    t.append(f"{name}\n", style="bold underline")
    about = getattr(screen, "HELP", "")
    if about:
        t.append(about + "\n")
    t.append("\nKeys here\n", style="bold")
    seen = set()
    for key, binding in screen._bindings:
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
        shown = binding.key_display or key
        t.append(f"  {shown:<16}", style="bold")
        t.append(f"{binding.description or binding.action}\n")
    t.append("\nEverywhere\n", style="bold")
    for key, desc in GENERAL:
        t.append(f"  {key:<16}", style="bold")
        t.append(f"{desc}\n")
    t.append(
        "\nThe TUI is a view over run folders: runs started with `n2n-core run` "
        "in a shell or on a cluster node show up here the same way.\n",
        style="italic",
    )
    return t
