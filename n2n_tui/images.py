"""How the TUI draws pictures: the terminal's graphics protocol, half-blocks, or not at all.

``N2N_IMAGES=halfblock|sixel|kitty|off`` forces the choice (tmux, tests, screen
readers); otherwise :func:`detect_mode` asks the terminal through textual-image,
which must happen before Textual starts (Textual then owns stdin and would eat
the answer). The app carries the chosen mode; widgets ask it for their class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

from n2n_core.errors import UserError
from n2n_core.runs.folders import sample_files

ImageMode = Literal["halfblock", "sixel", "kitty", "off"]
IMAGE_MODES: tuple[str, ...] = get_args(ImageMode)
ENV = "N2N_IMAGES"


def mode_from_env(environ: Mapping[str, str] = os.environ) -> ImageMode | None:
    """The forced mode, None when unset; a value that is not a mode is a user error."""
    value = environ.get(ENV, "").strip().lower()
    if not value:
        return None
    if value not in IMAGE_MODES:
        raise UserError(f"{ENV}={value}: expected one of {', '.join(IMAGE_MODES)}")
    return value  # type: ignore[return-value]


def detect_mode() -> ImageMode:
    """What this terminal can show.

    Importing textual-image queries the terminal (graphics support, cell size),
    so this must run before the app starts even when the mode is forced: once
    Textual owns stdin the answers would arrive as key presses.
    """
    try:
        from textual_image import renderable, widget  # noqa: F401
    except Exception:  # not installed, or no terminal to ask
        return "off"
    chosen = renderable.Image
    if chosen is renderable.SixelImage:
        return "sixel"
    if chosen is renderable.TGPImage:
        return "kitty"
    return "halfblock"


def choose_mode(forced: ImageMode | None) -> ImageMode:
    """``forced`` (from N2N_IMAGES or the caller), else what the terminal can show.

    Unless pictures are off, textual-image is loaded here either way, because
    loading it queries the terminal: call this before the app starts.
    """
    if forced == "off":
        return "off"
    detected = detect_mode()
    return forced or detected


def image_widget_class(mode: str):
    """The textual-image widget class for ``mode``; None for ``off`` or where it cannot load."""
    if mode == "off":
        return None
    try:
        from textual_image import widget
    except Exception:  # stdout closed, or the package is missing
        return None
    return {"sixel": widget.SixelImage, "kitty": widget.TGPImage}.get(mode, widget.HalfcellImage)


def pixels_per_cell(mode: str) -> tuple[int, int]:
    """Image pixels one terminal cell shows at 1:1 (half-blocks: one column, two rows)."""
    if mode in ("sixel", "kitty"):
        try:
            from textual_image._terminal import get_cell_size

            size = get_cell_size()
            return max(size.width, 1), max(size.height, 1)
        except Exception:
            return 10, 20
    return 1, 2


def sample_steps(samples_dir: Path) -> dict[int, list[Path]]:
    """Validation sample strips by step (each step's images by name)."""
    out: dict[int, list[Path]] = {}
    try:
        files = sample_files(samples_dir)
    except OSError:
        return out
    for path, step, _ in files:
        out.setdefault(step, []).append(path)
    return out


def crop_box(
    image: tuple[int, int], view: tuple[int, int], center: tuple[float, float]
) -> tuple[int, int, int, int]:
    """The ``view``-sized box (pixels) around ``center``, kept inside ``image``: (x0, y0, x1, y1)."""
    (iw, ih), (vw, vh) = image, view
    vw, vh = max(1, min(vw, iw)), max(1, min(vh, ih))
    x0 = int(min(max(round(center[0] - vw / 2), 0), iw - vw))
    y0 = int(min(max(round(center[1] - vh / 2), 0), ih - vh))
    return x0, y0, x0 + vw, y0 + vh


def open_in_browser(app, path: Path) -> bool:
    """In the browser view (``--serve``), the picture itself in a browser tab, at its full
    resolution, where the terminal in the page draws half-blocks; False elsewhere.

    textual-serve sends the file through its token-checked download route."""
    if not getattr(app, "is_web", False):
        return False
    kind = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    app.deliver_binary(path, open_method="browser", mime_type=kind, save_filename=path.name)
    return True
