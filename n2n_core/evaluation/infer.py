"""Denoising a user's own images at full resolution (no noise is added).

Large images are processed in overlapping tiles (``--tile``, and always above
:data:`~n2n_core.evaluation.protocol.AUTO_TILE_PIXELS`): see
:func:`~n2n_core.evaluation.protocol.infer_tiled`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from n2n_core.data.images import is_gray_file, load_image, save_image
from n2n_core.errors import UserError
from n2n_core.evaluation.protocol import Runner, clip_to_uint8, infer_tiled, to_float


def denoise_array(run: Runner, img_u8: np.ndarray, tile: int = 0) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (H, W, C)."""
    y = infer_tiled(run, to_float(img_u8), tile)
    return clip_to_uint8(y).transpose(1, 2, 0)


def make_runner_for_snapshot(
    snapshot: str, device: str = "cpu", engine: str = "auto", math: str = "high_precision"
):
    """(runner, channels) for a snapshot, on ``engine`` (``evaluation.engines``: ``auto``
    is what this machine measured fastest, or the rule without a measurement)."""
    from n2n_core.engine.device import compute_device
    from n2n_core.engine.snapshots import load_network
    from n2n_core.evaluation.engines import auto_engine, engine_runner

    dev = compute_device(device, math)
    net, snap = load_network(snapshot, dev)
    if snap.meta.get("task") == "mri":
        raise UserError(
            f"{snapshot}: an MRI snapshot reconstructs k-space; use `n2n-core validate` on MRI slices"
        )
    if engine == "auto":
        engine = auto_engine(dev.type)
    return engine_runner(net, snap.in_channels, dev, engine), snap.in_channels


def denoise_files(run: Runner, jobs: list[tuple[Path, Path]], channels: int, tile: int = 0):
    """Denoise each (input, output) pair; yields them as they are written."""
    for src, dst in jobs:
        img = load_image(src, channels)
        gray_in = is_gray_file(src)  # readable: load_image just decoded it
        out = denoise_array(run, img, tile)
        if gray_in and out.shape[2] == 3:
            out = np.clip(out.astype(np.float32).mean(axis=2, keepdims=True) + 0.5, 0, 255).astype(
                np.uint8
            )
        save_image(dst, out)
        yield src, dst
