"""Reading and writing images, with every awkward format turned into uint8 RGB.

Anything a user's disk holds must either load correctly or raise a ``UserError``
naming the file: 16-bit images are scaled (not clipped) to 8 bits, grayscale is
replicated to RGB, alpha is dropped, palette and CMYK are converted, and a
decompression bomb is refused before it is decoded. EXIF orientation is applied,
and only regular files are opened (a FIFO would block).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from n2n_core.errors import UserError
from n2n_core.files.checks import check_regular
from n2n_core.files.output import check_output, input_ids, make_output_dir

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".gif",
)
# Refuse images above this many pixels before decoding them (a 16k x 16k photo is fine).
MAX_PIXELS = 16384 * 16384

ImageFile.LOAD_TRUNCATED_IMAGES = False
# PIL's own bomb check uses the same limit (it warns at 1x and refuses at 2x).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def is_image_file(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def list_images(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.exists():
        raise UserError(f"{root}: folder not found")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    return sorted(p for p in root.iterdir() if is_image_file(p))


GRAY_MODES = ("1", "L", "LA", "I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def is_gray_file(path: str | Path) -> bool:
    """Whether an image file holds one channel (read from its header, not decoded)."""
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # header only
            with Image.open(p) as im:
                return im.mode in GRAY_MODES
    except UnidentifiedImageError:
        raise UserError(f"{p}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError:
        raise UserError(f"{p}: image too large (possible decompression bomb)") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read image ({e.strerror or e})") from None
    except (ValueError, SyntaxError, EOFError) as e:
        raise UserError(f"{p}: cannot read image ({e.__class__.__name__})") from None


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = 0.0, 1.0 if float(np.nanmax(arr, initial=0)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(arr) / hi * 255.0 + 0.5, lo, 255).astype(np.uint8)
    # Integer images wider than 8 bits: 16-bit PNG/TIFF ('I;16', 'I' holding 0..65535).
    top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    return np.clip(arr.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def load_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """An image as uint8 (H, W, channels). ``channels`` is 3 (RGB) or 1 (luma)."""
    p = Path(path)
    check_regular(p, "image", "an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise UserError(
                        f"{p}: image is {w}x{h} pixels, above the limit of {MAX_PIXELS} "
                        "(possible decompression bomb)"
                    )
                if w < 1 or h < 1:
                    raise UserError(f"{p}: image has no pixels")
                im.load()
                # Pixels as a viewer shows them: a phone photo stored sideways with an
                # EXIF orientation tag is turned upright, so the result matches the input.
                upright = ImageOps.exif_transpose(im)
                arr = _convert(upright, channels)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{p}: image too large (possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise UserError(f"{p}: not an image file (or an unsupported format)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        why = str(e).split("\n")[0] or e.__class__.__name__
        raise UserError(f"{p}: cannot decode image ({why})") from None
    except MemoryError:
        raise UserError(f"{p}: image too large to decode") from None
    return arr


def _convert(im: Image.Image, channels: int) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        gray = _to_uint8(np.asarray(im), mode)
        rgb = np.repeat(gray[..., None], 3, axis=2)
    elif mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgb = np.asarray(im.convert("RGBA"))[..., :3]
    elif mode in ("1", "L"):
        gray = np.asarray(im.convert("L"))
        rgb = np.repeat(gray[..., None], 3, axis=2)
    else:  # RGB, P, CMYK, YCbCr, LAB, HSV, ...
        rgb = np.asarray(im.convert("RGB"))
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if channels == 1:
        if mode in ("1", "L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return np.ascontiguousarray(rgb[..., :1])
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(luma + 0.5, 0, 255).astype(np.uint8)[..., None]
    return rgb


def save_image(path: str | Path, arr: np.ndarray) -> None:
    """Write uint8 (H, W, C) as PNG (or the extension's format), atomically."""
    from n2n_core.files.atomic import atomic_write_bytes

    p = Path(path)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    im = Image.fromarray(np.ascontiguousarray(arr))
    fmt = {
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".bmp": "BMP",
        ".tif": "TIFF",
        ".tiff": "TIFF",
        ".webp": "WEBP",
    }.get(p.suffix.lower(), "PNG")
    import io

    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError) as e:
        raise UserError(f"{p}: cannot encode image as {fmt} ({e})") from None
    try:
        atomic_write_bytes(p, buf.getvalue())
    except OSError as e:
        raise UserError(f"{p}: cannot write image ({e.strerror or e})") from None


def _pil_resize(arr: np.ndarray, h: int, w: int, method) -> np.ndarray:
    """Resize uint8 (H, W, C) with a PIL filter, keeping the channel axis for C = 1."""
    if arr.shape[2] == 1:
        return np.asarray(Image.fromarray(arr[..., 0]).resize((w, h), method))[..., None]
    return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).resize((w, h), method))


def shrink_to(arr: np.ndarray, side: int) -> np.ndarray:
    """Area-average a uint8 (H, W, C) region down to side x side (PIL's box filter:
    each output pixel the mean of the input pixels it covers, no ringing)."""
    return _pil_resize(arr, side, side, Image.BOX)


def resize_to(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bicubic resize of uint8 (H, W, C) — how the reference grows images smaller than a crop."""
    return _pil_resize(arr, h, w, Image.BICUBIC)


def image_jobs(image: str, out: str, model: str | None = None) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file -> a file, a folder -> the same names in the out folder.

    Output names in folder mode: each input keeps its file name, except that a GIF
    (which is not written) becomes NAME.png. When two inputs would get the same
    output name (``a.gif`` and ``a.png``), every one of them keeps its full name and
    gains ``.png`` (``a.gif.png``, ``a.png.png``), so no result replaces another.
    No output may be one of the inputs (the same path, a hard link or a symlink to it),
    the ``model`` (snapshot or ONNX file), a device, FIFO or symlink; a folder --out
    may not lie inside the --image folder.
    """

    src, dst = Path(image), Path(out)
    if not src.exists():
        raise UserError(f"{src}: image not found")
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise UserError(f"{src}: no images found in folder")
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: --out must be a folder when --image is a folder")
        names = [f.stem + ".png" if f.suffix.lower() == ".gif" else f.name for f in files]
        clashes = {n for n in names if names.count(n) > 1}
        jobs = [
            (f, dst / (f.name + ".png" if n in clashes else n))
            for f, n in zip(files, names, strict=True)
        ]
    else:
        jobs = [(src, dst / src.name if dst.is_dir() else dst)]
    if dst.exists() or not src.is_dir():  # a folder not made yet holds nothing to spoil
        keep = input_ids([f for f, _ in jobs] + ([model] if model else []))
        for _, out_file in jobs:
            check_output(out_file, "a denoised image", inputs=keep)
    if src.is_dir():
        check_output(dst, "--out", input_folders=(src,), folder=True)
        make_output_dir(dst, "--out")
    return jobs
