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
    """(runner, channels) for a snapshot.

    ``engine="auto"`` picks onnxruntime on the CPU and PyTorch on accelerators.
    benchmarks/bench_infer.py, 2-core CPU shared with other jobs, torch 2.13,
    onnxruntime 1.32, same weights and threads, median of 5 alternating rounds:
    768x512 PyTorch 4385 ms (channels_last; NCHW 5186 ms) vs onnxruntime 2433 ms
    (1.80x); 256x256 1225 ms vs 496 ms (2.47x). Without onnxruntime installed
    ``auto`` falls back to PyTorch.
    """
    from n2n_core.engine.device import compute_device
    from n2n_core.engine.snapshots import load_network
    from n2n_core.evaluation.protocol import torch_runner

    dev = compute_device(device, math)
    net, snap = load_network(snapshot, dev)
    if snap.meta.get("task") == "mri":
        raise UserError(
            f"{snapshot}: an MRI snapshot reconstructs k-space; use `n2n-core validate` on MRI slices"
        )
    if engine == "auto":
        engine = "onnx" if dev.type == "cpu" and _have_onnxruntime() else "torch"
    if engine == "onnx":
        from n2n_core.evaluation.onnx import onnx_runner_for_net

        return onnx_runner_for_net(net, snap.in_channels, dev.type), snap.in_channels
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
        gray_in = is_gray_file(src)  # readable: load_image just decoded it
        out = denoise_array(run, img, tile)
        if gray_in and out.shape[2] == 3:
            out = np.clip(out.astype(np.float32).mean(axis=2, keepdims=True) + 0.5, 0, 255).astype(
                np.uint8
            )
        save_image(dst, out)
        yield src, dst
