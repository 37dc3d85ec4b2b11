"""Denoising a user's own images at full resolution (no noise is added).

Large images can be processed in overlapping tiles: each tile is run with a
margin of context on every side and only its centre is kept, so the result is
seam-free and agrees with whole-image inference away from the image border.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.images import load_image, save_image
from .errors import UserError
from .evaluate import Runner, clip_to_uint8, infer_float, to_float

TILE_MARGIN = 96


def infer_tiled(run: Runner, x: np.ndarray, tile: int, margin: int = TILE_MARGIN) -> np.ndarray:
    """Float (C, H, W) -> float (C, H, W), in tiles of ``tile`` pixels with ``margin`` context."""
    c, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return infer_float(run, x)
    if tile < 32:
        raise UserError(f"--tile {tile}: must be at least 32")
    core = max(tile - 2 * margin, 32)
    out = np.empty_like(x, dtype=np.float32)
    for y0 in range(0, h, core):
        for x0 in range(0, w, core):
            y1, x1 = min(y0 + core, h), min(x0 + core, w)
            ya, xa = max(0, y0 - margin), max(0, x0 - margin)
            yb, xb = min(h, y1 + margin), min(w, x1 + margin)
            pred = infer_float(run, x[:, ya:yb, xa:xb])
            out[:, y0:y1, x0:x1] = pred[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return out


def denoise_array(run: Runner, img_u8: np.ndarray, tile: int = 0) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (H, W, C)."""
    y = infer_tiled(run, to_float(img_u8), tile)
    return clip_to_uint8(y).transpose(1, 2, 0)


def make_runner_for_snapshot(snapshot: str, device: str = "cpu", engine: str = "auto"):
    """(runner, channels) for a snapshot, on PyTorch (the default; see benchmarks/RESULTS.md)."""
    from .device import resolve_device
    from .evaluate import torch_runner
    from .snapshots import load_network

    dev = resolve_device(device)
    net, snap = load_network(snapshot, dev)
    if snap.meta.get("task") == "mri":
        raise UserError(
            f"{snapshot}: an MRI snapshot reconstructs k-space; use `n2n-core validate` on MRI slices"
        )
    if engine == "onnx":
        from .export import onnx_runner_for_net

        return onnx_runner_for_net(net, snap.in_channels), snap.in_channels
    return torch_runner(net, dev), snap.in_channels


def denoise_files(run: Runner, jobs: list[tuple[Path, Path]], channels: int, tile: int = 0):
    """Denoise each (input, output) pair; yields them as they are written."""
    for src, dst in jobs:
        img = load_image(src, channels)
        gray_in = _is_gray(src)
        out = denoise_array(run, img, tile)
        if gray_in and out.shape[2] == 3:
            out = np.clip(out.astype(np.float32).mean(axis=2, keepdims=True) + 0.5, 0, 255).astype(
                np.uint8
            )
        save_image(dst, out)
        yield src, dst


def _is_gray(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    except Exception:
        return False
