"""One-file training sets: every image as raw uint8, memory-mapped for random crops.

This is our TFRecord. Layout::

    b"N2NDSET1" | uint64 header length | JSON header | padding to 64 | raw HWC uint8 images

The header lists each image's name, height, width and byte offset. Built with
``n2n-core dataset build --src DIR --out FILE``; read with :func:`open_packed`.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from n2n_core.data.images import list_images, load_image
from n2n_core.errors import UserError
from n2n_core.files.atomic import open_temp_beside
from n2n_core.files.checks import check_regular, is_regular_file

MAGIC = b"N2NDSET1"
ALIGN = 64


def build_packed(src: str | Path, out: str | Path, channels: int = 3, progress=None) -> dict:
    """Pack every image of ``src`` into ``out``; returns a summary.

    Streams: each image is decoded and appended to a temporary body file, so
    memory holds one image at a time (ImageNet-val is ~25 GB of pixels). The
    final file is header + body, renamed into place: a failure leaves no file.
    """
    files = list_images(src)
    if not files:
        raise UserError(f"{src}: no images found (looked for png, jpg, bmp, tif, webp, ppm, gif)")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{out}: is a folder, expected an output file name")
    if not out.parent.exists():
        raise UserError(f"{out.parent}: folder not found")
    body = tmp = None
    entries, offset = [], 0
    try:
        fd_body, body = open_temp_beside(out, "body")
        with os.fdopen(fd_body, "wb") as fb:
            for i, f in enumerate(files):
                arr = load_image(f, channels)  # raises UserError naming a bad file
                entries.append(
                    {
                        "name": f.name,
                        "h": int(arr.shape[0]),
                        "w": int(arr.shape[1]),
                        "offset": offset,
                    }
                )
                fb.write(arr.tobytes())
                offset += arr.nbytes
                if progress:
                    progress(i + 1, len(files))
        header = json.dumps({"channels": channels, "images": entries}).encode()
        pad = (-(len(MAGIC) + 8 + len(header))) % ALIGN
        fd_tmp, tmp = open_temp_beside(out)
        with os.fdopen(fd_tmp, "wb") as fh, open(body, "rb") as fb:
            fh.write(MAGIC + struct.pack("<Q", len(header) + pad) + header + b" " * pad)
            while chunk := fb.read(1 << 24):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as e:
        raise UserError(f"{out}: cannot write data set ({e.strerror or e})") from None
    finally:
        for p in (body, tmp):
            if p is not None:
                p.unlink(missing_ok=True)
    return {
        "images": len(entries),
        "bytes": out.stat().st_size,
        "channels": channels,
        "out": str(out),
    }


def is_packed(path: Path) -> bool:
    if not is_regular_file(path):  # a FIFO would block the open
        return False
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def open_packed(path: str | Path) -> tuple[list[np.ndarray], list[str], int]:
    """Memory-mapped views of each image: (arrays, names, channels)."""
    p = Path(path)
    # A FIFO or device is refused before the open, which would block on it.
    size = check_regular(p, "data set file", "an n2n data set file").st_size
    try:
        with open(p, "rb") as f:
            magic = f.read(len(MAGIC))
            if magic != MAGIC:
                raise UserError(
                    f"{p}: not an n2n data set file (build one with `n2n-core dataset build`)"
                )
            (hlen,) = struct.unpack("<Q", f.read(8))
            base = len(MAGIC) + 8 + hlen
            if base > size:  # a length past the end (2**63): nothing to read, nor to allocate
                raise UserError(f"{p}: data set file is truncated or corrupt (header length)")
            header = json.loads(f.read(hlen))
        channels = int(header["channels"])
        mm = np.memmap(p, dtype=np.uint8, mode="r")
        arrays, names = [], []
        for e in header["images"]:
            h, w, off = int(e["h"]), int(e["w"]), int(e["offset"])
            n = h * w * channels
            if base + off + n > size or h < 1 or w < 1 or off < 0 or channels < 1:
                raise UserError(
                    f"{p}: data set file is truncated or corrupt (image {e.get('name')})"
                )
            arrays.append(mm[base + off : base + off + n].reshape(h, w, channels))
            names.append(str(e["name"]))
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError, struct.error, OverflowError, RecursionError):
        raise UserError(f"{p}: data set file is truncated or corrupt") from None
    if not arrays:
        raise UserError(f"{p}: data set holds no images")
    return arrays, names, channels
