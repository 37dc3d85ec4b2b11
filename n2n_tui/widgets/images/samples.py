"""The dashboard's validation pictures: every sample strip (noisy | denoised | clean) of
every validation step, the newest by default; a 1:1 crop that pans."""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image as PILImage

from n2n_core.runs.layout import RunPaths

from ...images import crop_box, pixels_per_cell, sample_steps
from .picture import Picture, load_picture

RESCAN_S = 1.0


class SamplePanel(Picture):
    """Follows the newest sample strip of a run; ``step_through`` pins an older step,
    ``image_through`` another image of the step; ``zoom`` shows a 1:1 crop that ``pan``
    moves.

    Hidden while the run has no samples, so runs without validation look as before.
    """

    DEFAULT_CSS = """
    SamplePanel.-empty { display: none; }
    """

    def __init__(self, run_dir: str | Path, **kwargs) -> None:
        super().__init__("samples", **kwargs)
        self.samples_dir = RunPaths(run_dir).samples
        self.steps: list[int] = []
        self.paths: dict[int, list[Path]] = {}
        self.pinned: int | None = None  # None: follow the newest
        self.image_name: str | None = None  # the image shown (by name, kept across steps)
        self.upto: int | None = None
        self.shown: tuple | None = None
        self.zoomed = False
        self.center: tuple[float, float] | None = None
        self.box: tuple[int, int, int, int] | None = None  # the crop shown when zoomed
        self._image: tuple[Path, PILImage.Image | None, str] | None = None
        self._scanned = 0.0

    def on_mount(self) -> None:
        self.add_class("-empty")
        super().on_mount()

    def on_resize(self) -> None:
        if self.zoomed:
            self._draw()

    @property
    def has_samples(self) -> bool:
        return not self.has_class("-empty")

    def poll(self, upto_step: int | None = None, force: bool = False) -> None:
        """Rescan (at most once a second) and show; ``upto_step`` hides later ones (replay)."""
        now = time.monotonic()
        if force or now - self._scanned >= RESCAN_S or upto_step != self.upto:
            if force or now - self._scanned >= RESCAN_S:
                self.paths = sample_steps(self.samples_dir)
                self._scanned = now
            self.upto = upto_step
            self.steps = [s for s in self.paths if upto_step is None or s <= upto_step]
            self._draw()

    def step_through(self, delta: int) -> None:
        """Older (-1) or newer (+1) step; stepping past the newest follows again."""
        if not self.steps:
            return
        i = self.steps.index(self.current) if self.current in self.steps else len(self.steps) - 1
        i = min(max(i + delta, 0), len(self.steps) - 1)
        self.pinned = None if i == len(self.steps) - 1 else self.steps[i]
        self._draw()

    def image_through(self, delta: int) -> None:
        """The previous (-1) or next (+1) image of the step shown (it wraps around)."""
        images = self.images()
        if not images:
            return
        i = self._image_index(images)
        self.image_name = _image_name(images[(i + delta) % len(images)])
        self._draw()

    def zoom(self) -> None:
        """A 1:1 crop (one image pixel per terminal pixel), or the whole strip again."""
        self.zoomed = not self.zoomed
        self._draw()

    def pan(self, dx: int, dy: int) -> None:
        """Move the 1:1 crop a quarter of the pane; the edges hold it."""
        image = self._loaded()
        if not self.zoomed or image is None:
            return
        vw, vh = self.view_pixels()
        cx, cy = self.center or (image.width / 2, image.height / 2)
        x0, y0, x1, y1 = crop_box(
            (image.width, image.height), (vw, vh), (cx + dx * vw / 4, cy + dy * vh / 4)
        )
        self.center = ((x0 + x1) / 2, (y0 + y1) / 2)
        self._draw()

    def view_pixels(self) -> tuple[int, int]:
        """Image pixels the pane shows at 1:1."""
        cols, rows = self.content_size.width, max(self.content_size.height - 1, 1)
        pw, ph = pixels_per_cell(getattr(self.app, "image_mode", "halfblock"))
        return max(cols * pw, 1), max(rows * ph, 1)

    @property
    def current(self) -> int | None:
        if not self.steps:
            return None
        if self.pinned is not None and self.pinned in self.steps:
            return self.pinned
        return self.steps[-1]

    def images(self) -> list[Path]:
        """The sample strips of the step shown (one per validation image)."""
        step = self.current
        return self.paths.get(step, []) if step is not None else []

    def current_path(self) -> Path | None:
        images = self.images()
        return images[self._image_index(images)] if images else None

    def _image_index(self, images: list[Path]) -> int:
        names = [_image_name(p) for p in images]
        return names.index(self.image_name) if self.image_name in names else 0

    def _loaded(self) -> PILImage.Image | None:
        path = self.current_path()
        if path is None:
            return None
        if self._image is None or self._image[0] != path:
            try:
                self._image = (path, load_picture(path), path.name)
            except (OSError, ValueError) as e:
                self._image = (path, None, f"cannot read {path.name}: {e}")
        return self._image[1]

    def _draw(self) -> None:
        step = self.current
        if self.has_samples != (step is not None):
            # A class, not an inline style, so that the screen's CSS can still hide it.
            self.set_class(step is None, "-empty")
            self.screen.set_class(step is not None, "-samples")
            self.screen.refresh_bindings()  # the screen offers keys only while there are samples
        if step is None:
            return
        images = self.images()
        path = images[self._image_index(images)]
        i = self.steps.index(step) + 1
        follow = "" if self.pinned is None else " · pinned"
        k = self._image_index(images) + 1
        label = (
            f"samples · step {step:,} ({i}/{len(self.steps)}{follow}) · "
            f"image {k}/{len(images)} {_image_name(path)} · noisy | denoised | clean · "
            "[ ] step  < > image  z 1:1  p open"
            + ("  o browser tab" if getattr(self.app, "is_web", False) else "")
        )
        image = self._loaded()
        assert self._image is not None
        text = self._image[2]
        box = None
        if image is not None and self.zoomed:
            if self.center is None:
                self.center = (image.width / 2, image.height / 2)
            box = crop_box((image.width, image.height), self.view_pixels(), self.center)
            x0, y0, x1, y1 = box
            text = f"{path.name}  x {x0}–{x1}  y {y0}–{y1}  1:1 (h j k l pan, z whole)"
        key = (path, label, box)
        if key == self.shown:
            return
        self.shown = key
        self.box = box
        self.show(image.crop(box) if image is not None and box else image, label, text)


def _image_name(path: Path) -> str:
    """``astronaut`` of ``step-00002000-astronaut.png``."""
    return path.stem.split("-", 2)[-1]
