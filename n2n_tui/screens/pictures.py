"""Pictures side by side: an input and its denoised versions, the same crop in every pane.

Fit shows whole images; ``z`` switches to a 1:1 crop (one image pixel per
terminal pixel: per half-block with half-blocks) that the arrow keys pan, and
``+``/``-`` magnify it further. Every pane shows the same region, so two
snapshots or two runs are compared pixel for pixel.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Static

from ..images import crop_box, pixels_per_cell
from ..widgets.images import Picture, load_picture
from .base import BaseScreen

MAGNIFY = (1, 2, 4, 8)


class PicturesScreen(BaseScreen):
    HELP = (
        "Images side by side. z: whole image / 1:1 crop; arrows or h j k l pan the crop "
        "(all panes together); + and - magnify the crop. In the browser view (--serve), "
        "o opens each image at full resolution in a browser tab."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("z", "zoom", "Zoom 1:1 / fit"),
        Binding("left,h", "pan(-1, 0)", "Pan", show=False),
        Binding("right,l", "pan(1, 0)", "Pan", show=False),
        Binding("up,k", "pan(0, -1)", "Pan", show=False),
        Binding("down,j", "pan(0, 1)", "Pan", show=False),
        Binding("plus,equals_sign", "magnify(1)", "Magnify", key_display="+"),
        Binding("minus", "magnify(-1)", "Less", key_display="-", show=False),
        Binding("o", "open_in_browser", "Open in browser"),
    ]

    def __init__(self, title: str, items: list[tuple[str, Path]], zoomed: bool = False):
        """``zoomed``: open at 1:1 (a sample strip, whose halves look alike scaled down)."""
        super().__init__()
        self.heading = title
        self.items = items
        self.images: list[PILImage.Image | None] = []
        self.errors: list[str] = []
        self.zoomed = zoomed
        self.magnify = 1
        self.center: tuple[float, float] | None = None
        self.box: tuple[int, int, int, int] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.heading, id="pics-title", classes="info-line")
        with Horizontal(id="pics-row"):
            for label, _ in self.items:
                yield Picture(label)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "pictures"
        for _, path in self.items:
            try:
                self.images.append(load_picture(path))
                self.errors.append("")
            except (OSError, ValueError) as e:
                self.images.append(None)
                self.errors.append(f"cannot read {path}: {e}")
        first = next((im for im in self.images if im is not None), None)
        if first is not None:
            self.center = (first.width / 2, first.height / 2)
        self.call_after_refresh(self.redraw)

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    def view_pixels(self) -> tuple[int, int]:
        """Image pixels a pane shows at the current zoom."""
        pane = self.query(Picture).first()
        cols, rows = pane.content_size.width, max(pane.content_size.height - 1, 1)
        pw, ph = pixels_per_cell(self.app.image_mode)
        return max(cols * pw // self.magnify, 1), max(rows * ph // self.magnify, 1)

    def redraw(self) -> None:
        view = self.view_pixels()
        for pane, im, err, (_, path) in zip(
            self.query(Picture), self.images, self.errors, self.items, strict=True
        ):
            if im is None:
                pane.show(None, text=err)
                continue
            if not self.zoomed or self.center is None:
                pane.show(im, text=f"{path.name}  {im.width}×{im.height}  whole image")
                continue
            box = crop_box((im.width, im.height), view, self.center)
            self.box = box
            x0, y0, x1, y1 = box
            pane.show(
                im.crop(box),
                text=f"{path.name}  x {x0}–{x1}  y {y0}–{y1}  {self.magnify}:1",
            )

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "open_in_browser":  # the browser view only: the real images in tabs
            return self.app.is_web
        return True

    def action_open_in_browser(self) -> None:
        from ..images import open_in_browser

        opened = [path.name for _, path in self.items if open_in_browser(self.app, path)]
        if opened:
            self.notify(f"opening {', '.join(opened)} in browser tabs", title="Pictures")

    def action_zoom(self) -> None:
        self.zoomed = not self.zoomed
        self.redraw()

    def action_magnify(self, delta: int) -> None:
        i = MAGNIFY.index(self.magnify) + delta
        self.magnify = MAGNIFY[min(max(i, 0), len(MAGNIFY) - 1)]
        self.zoomed = True
        self.redraw()

    def action_pan(self, dx: int, dy: int) -> None:
        if not self.zoomed or self.center is None:
            return
        vw, vh = self.view_pixels()
        first = next(im for im in self.images if im is not None)
        cx, cy = self.center
        # Move a quarter view, then keep the centre of the clamped box so that
        # pressing past an edge does not pile up distance to walk back.
        x0, y0, x1, y1 = crop_box(
            (first.width, first.height), (vw, vh), (cx + dx * vw / 4, cy + dy * vh / 4)
        )
        self.center = ((x0 + x1) / 2, (y0 + y1) / 2)
        self.redraw()

    def action_back(self) -> None:
        self.app.pop_screen()
