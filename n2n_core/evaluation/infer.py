"""Denoising a user's own images at full resolution (no noise is added).

Large images can be processed in overlapping tiles: each tile is run with a
margin of context on every side and only its centre is kept, so the result is
seam-free and agrees with whole-image inference away from the image border.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from n2n_core.data.images import is_gray_file, load_image, save_image
from n2n_core.errors import UserError
from n2n_core.evaluation.protocol import Runner, clip_to_uint8, infer_float, to_float

# Context kept on each side of a tile, in pixels (a multiple of 32 so every tile
# starts on the network's pooling grid). The U-Net's receptive field reaches 158
# pixels (+ up to 31 of pooling alignment), so only a margin of 192 guarantees
# exact tiling; in practice the far context weighs little. Measured on a noisy
# (sigma 25) 200x300 crop tiled across its width, the largest difference from
# whole-image inference in uint8 levels, for margin 64 / 96 / 128: random-init
# U-Nets (seeds 0, 2) 60-75 / 15-17 / 0; a U-Net trained 200 quickstart steps
# 1 / 1 / 0. Random weights are the hard case (no learned locality), and 128 is
# the smallest margin that keeps them seam-free too.
TILE_MARGIN = 128
GRID = 32  # the U-Net pools five times


def tile_spans(n: int, tile: int, margin: int = TILE_MARGIN) -> list[tuple[int, int, int, int]]:
    """Split one axis of length ``n`` into (core_start, core_end, in_start, in_end) spans.

    The cores partition ``[0, n)``; each input span is its core plus up to ``margin``
    of context on both sides, at most ``tile`` long, and starts on the 32-pixel
    grid so tiles see the same pooling grid as the whole image. Tiles at the
    image edge need context on one side only, so their cores are longer.
    """
    if margin % GRID:
        raise ValueError(f"margin must be a multiple of {GRID}")
    t = max(tile // GRID * GRID, 2 * margin + GRID)
    if n <= tile:
        return [(0, n, 0, n)]
    spans, c = [], 0
    while True:
        lo = max(0, c - margin)
        if lo + t >= n:
            spans.append((c, n, lo, n))
            return spans
        end = lo + t - margin
        spans.append((c, end, lo, end + margin))
        c = end


def infer_tiled(run: Runner, x: np.ndarray, tile: int, margin: int = TILE_MARGIN) -> np.ndarray:
    """Float (C, H, W) -> float (C, H, W), in tiles of at most ``tile`` pixels a side.

    A ``tile`` below ``2 * margin + 32`` is raised to that (the smallest tile
    that still moves forward by one 32-pixel core).
    """
    if 0 < tile < GRID:
        raise UserError(f"--tile {tile}: must be at least {GRID}")
    c, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return infer_float(run, x)
    out = np.empty_like(x, dtype=np.float32)
    for y0, y1, ya, yb in tile_spans(h, tile, margin):
        for x0, x1, xa, xb in tile_spans(w, tile, margin):
            pred = infer_float(run, x[:, ya:yb, xa:xb])
            out[:, y0:y1, x0:x1] = pred[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return out


def denoise_array(run: Runner, img_u8: np.ndarray, tile: int = 0) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (H, W, C)."""
    y = infer_tiled(run, to_float(img_u8), tile)
    return clip_to_uint8(y).transpose(1, 2, 0)


def make_runner_for_snapshot(snapshot: str, device: str = "cpu", engine: str = "auto"):
    """(runner, channels) for a snapshot.

    ``engine="auto"`` picks onnxruntime on the CPU and PyTorch on accelerators.
    benchmarks/bench_infer.py, 2-core CPU shared with other jobs, torch 2.13,
    onnxruntime 1.32, same weights and threads, median of 5 alternating rounds:
    768x512 PyTorch 4385 ms (channels_last; NCHW 5186 ms) vs onnxruntime 2433 ms
    (1.80x); 256x256 1225 ms vs 496 ms (2.47x). Without onnxruntime installed
    ``auto`` falls back to PyTorch.
    """
    from n2n_core.engine.device import resolve_device
    from n2n_core.engine.snapshots import load_network
    from n2n_core.evaluation.protocol import torch_runner

    dev = resolve_device(device)
    net, snap = load_network(snapshot, dev)
    if snap.meta.get("task") == "mri":
        raise UserError(
            f"{snapshot}: an MRI snapshot reconstructs k-space; use `n2n-core validate` on MRI slices"
        )
    if engine == "auto":
        engine = "onnx" if dev.type == "cpu" and _have_onnxruntime() else "torch"
    if engine == "onnx":
        from n2n_core.evaluation.onnx import onnx_runner_for_net

        return onnx_runner_for_net(net, snap.in_channels), snap.in_channels
    return torch_runner(net, dev), snap.in_channels


def _have_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


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
    try:
        return is_gray_file(path)
    except UserError:  # load_image names what is wrong with it
        return False
