"""One picture in a bordered pane: drawn by textual-image, or described in words when off."""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static

from ...images import image_widget_class

# Pictures come from run folders: a decompression bomb must not stall the UI.
MAX_PIXELS = 64_000_000


def load_picture(path: Path) -> PILImage.Image:
    """An RGB copy of a PNG/JPEG, or OSError/ValueError with the reason."""
    try:
        with PILImage.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{im.width}×{im.height} pixels is too large to show")
            return im.convert("RGB")
    except PILImage.DecompressionBombError as e:
        raise ValueError(str(e).split(".")[0]) from None


class Picture(Container):
    """Shows a PIL image scaled into the pane (aspect kept); a text line where pictures are off."""

    DEFAULT_CSS = """
    Picture { height: 1fr; border: round $panel-lighten-2; border-title-color: $text-muted; }
    Picture > .picture-image { width: auto; height: auto; }
    Picture > .picture-text { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, label: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = label
        self.image: PILImage.Image | None = None
        self.text = ""

    def compose(self) -> ComposeResult:
        cls = image_widget_class(getattr(self.app, "image_mode", "halfblock"))
        if cls is not None:
            yield cls(None, classes="picture-image")
        yield Static("", classes="picture-text")

    def show(self, image: PILImage.Image | None, label: str | None = None, text: str = "") -> None:
        """Draw ``image`` (None: nothing) with ``text`` under or instead of it."""
        if label is not None:
            self.border_title = label
        self.image, self.text = image, text
        if not self.is_mounted:
            return
        pic = self.query(".picture-image")
        if pic:
            pic.first().image = image
        elif image is not None:
            off = f"{image.width}×{image.height} px (pictures are off: N2N_IMAGES)"
            text = f"{text}  {off}" if text else off
        self.query_one(".picture-text", Static).update(Text(text))

    def on_mount(self) -> None:
        self.show(self.image, text=self.text)
