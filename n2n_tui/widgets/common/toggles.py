"""Radio buttons and switches whose state reads without colour: a filled or empty mark and
a word, for monochrome terminals and colour-blind users alike."""

from __future__ import annotations

from rich.text import Text
from textual.content import Content
from textual.widgets import RadioButton, Switch

ON, OFF = "●", "○"


class MarkedRadioButton(RadioButton):
    """A radio button drawn ``(●)`` when chosen and ``(○)`` when not (Textual draws ● both ways
    and tells them apart by colour only)."""

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = ON if self.value else OFF
        return super()._button


class WordSwitch(Switch):
    """A switch that says ``on`` or ``off`` beside its mark, not only by colour and slider side."""

    def render(self) -> Text:
        style = self.get_component_rich_style("switch--slider")
        return Text(f"{ON} on" if self.value else f"{OFF} off", style=style)

    def get_content_width(self, container, viewport) -> int:
        return 5
