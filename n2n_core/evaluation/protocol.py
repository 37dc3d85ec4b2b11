"""The validation protocol — the one implementation every path uses.

Exactly the reference's (NVlabs ``validation.py`` / ``util.infer_image``):

1. the clean uint8 image is mapped to float in [-0.5, 0.5];
2. noise is added in float, not clipped, drawn from ``numpy.random.default_rng(seed)``
   image after image in file-name order, so every call sees the same noise;
3. the network input is reflect-padded on the bottom/right to a multiple of 32
   and the output is cropped back;
4. the output goes to uint8 by ``clip((y + 0.5) * 255 + 0.5, 0, 255)``;
5. PSNR per image against the uint8 original, averaged over images.

Beside PSNR, the colour shift: per image and channel, mean(denoised) −
mean(clean) in levels of 255. PSNR hides a network that pulls every colour
towards the palette of its few training photos (greens coming out grey);
the mean |shift| and the worst (image, channel) show it.

The input PSNR (the corrupted image through the same uint8 mapping) is reported
beside it so the gain is always visible. The network is any callable taking a
padded float32 (1, C, H, W) array — a PyTorch module or an ONNX session alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from n2n_core import formatting as fmt
from n2n_core.config.schema import LEVEL_PARAM
from n2n_core.data.sources import ValImage
from n2n_core.errors import UserError, printable

PAD_MULTIPLE = 32
PSNR_IDENTICAL = 100.0  # reported when an image is reproduced exactly (MSE 0)

Runner = Callable[[np.ndarray], np.ndarray]


def to_float(img_u8: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) -> float32 (C, H, W) in [-0.5, 0.5]."""
    return img_u8.transpose(2, 0, 1).astype(np.float32) / 255.0 - 0.5


def clip_to_uint8(arr: np.ndarray) -> np.ndarray:
    """float (..., in [-0.5, 0.5]) -> uint8 with round-half-up, as the reference."""
    return np.clip((arr + 0.5) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def psnr(a_u8: np.ndarray, b_u8: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of the same shape (peak 255)."""
    if a_u8.shape != b_u8.shape:
        raise ValueError(f"shape mismatch {a_u8.shape} vs {b_u8.shape}")
    err = np.mean(np.square(a_u8.astype(np.float64) - b_u8.astype(np.float64)))
    if err == 0:
        return PSNR_IDENTICAL
    return float(10.0 * math.log10(255.0 * 255.0 / err))


def pad_amount(h: int, w: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    return (-h) % multiple, (-w) % multiple


def pad_image(x: np.ndarray, multiple: int = PAD_MULTIPLE) -> np.ndarray:
    """Reflect-pad (C, H, W) on the bottom and right to a multiple of ``multiple``."""
    ph, pw = pad_amount(x.shape[1], x.shape[2], multiple)
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect")


# Above this many pixels the network runs in tiles: its activations take ~50x the
# image's own memory, so a 16384^2 picture would need hundreds of GB at once. Every
# image of the usual test sets (Kodak24, CBSD68, McMaster18, DIV2K) is below it and
# is scored whole, exactly as the reference does.
AUTO_TILE_PIXELS = 2048 * 2048
AUTO_TILE = 1024


def infer_float(run: Runner, x: np.ndarray) -> np.ndarray:
    """Run the network on one float (C, H, W) image of any size; float (C, H, W) out.

    Images above :data:`AUTO_TILE_PIXELS` go through :func:`infer_tiled`, so memory
    stays bounded whatever the image's size."""
    h, w = x.shape[1:]
    if h * w > AUTO_TILE_PIXELS:
        return infer_tiled(run, x, AUTO_TILE)
    y = run(np.ascontiguousarray(pad_image(x)[None], dtype=np.float32))
    return np.asarray(y[0, :, :h, :w], dtype=np.float32)


def infer_uint8(run: Runner, x: np.ndarray) -> np.ndarray:
    """Denoise one float (C, H, W) image; uint8 (C, H, W) out."""
    return clip_to_uint8(infer_float(run, x))


def torch_runner(
    net: torch.nn.Module,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    autocast_dtype: torch.dtype | None = None,
) -> Runner:
    """A :data:`Runner` around a PyTorch network (inference mode, no autograd)."""
    device = torch.device(device)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            t = torch.from_numpy(batch).to(device)
            if channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            if autocast_dtype is not None:
                with torch.autocast(device.type, dtype=autocast_dtype):
                    y = net(t)
            else:
                y = net(t)
            return y.float().cpu().numpy()

    return run


def colour_shift(pred_u8: np.ndarray, clean_u8: np.ndarray) -> np.ndarray:
    """Per channel, mean(denoised) − mean(clean) of one uint8 (C, H, W) pair, in levels of 255."""
    c = clean_u8.shape[0]
    return pred_u8.reshape(c, -1).mean(axis=1, dtype=np.float64) - clean_u8.reshape(c, -1).mean(
        axis=1, dtype=np.float64
    )


def channel_name(channels: int, k: int) -> str:
    return "RGB"[k] if channels == 3 else str(k)


@dataclass(frozen=True)
class ColourShift:
    """The colour bias of a model on a set of images, in levels of 255."""

    mean_abs: float  # mean |shift| over images and channels
    worst: float  # the signed shift of largest magnitude
    worst_image: str
    worst_channel: str

    @classmethod
    def of(cls, names: list[str], shifts: list[np.ndarray]) -> ColourShift:
        table = np.stack(shifts)  # (images, channels)
        i, k = np.unravel_index(int(np.argmax(np.abs(table))), table.shape)
        return cls(
            mean_abs=float(np.mean(np.abs(table))),
            worst=float(table[i, k]),
            worst_image=names[i],
            worst_channel=channel_name(table.shape[1], int(k)),
        )

    def to_json(self) -> dict:
        return {
            "colour_shift": round(self.mean_abs, 2),
            "colour_shift_worst": round(self.worst, 2),
            "colour_shift_worst_image": self.worst_image,
            "colour_shift_worst_channel": self.worst_channel,
        }

    def describe(self) -> str:
        where = {"channel": printable(self.worst_channel), "image": printable(self.worst_image)}
        return "colour shift " + fmt.colour_shift(self.mean_abs, self.worst, **where)


@dataclass
class ValResult:
    psnr: float
    input_psnr: float
    images: int
    noise: str
    seed: int
    per_image: list[dict] = field(default_factory=list)
    colour: ColourShift | None = None  # None where shifts are not measured (MRI magnitudes)
    level: float | None = None  # the noise's strength (val_sigma...), where it has one

    def to_json(self) -> dict:
        out = {
            "psnr": round(self.psnr, 2),
            "input_psnr": round(self.input_psnr, 2),
            "images": self.images,
            "noise": self.noise,
            "seed": self.seed,
        }
        if self.level is not None:
            out["level"] = self.level
        if self.colour is not None:
            out.update(self.colour.to_json())
        return out


def noise_strength(noise) -> float | None:
    """The strength a validation noise is drawn at (``val_sigma`` of gaussian...), as an
    evaluation's ``level`` records it; None for a noise without one."""
    value = getattr(noise, LEVEL_PARAM.get(getattr(noise, "name", ""), ""), None)
    return float(value) if isinstance(value, int | float) else None


def score_record(name: str, p_out: float, p_in: float, shift: np.ndarray) -> dict:
    """One image's line in ``ValResult.per_image``."""
    return {
        "name": name,
        "psnr": round(p_out, 2),
        "input_psnr": round(p_in, 2),
        "colour_shift": [round(float(v), 2) for v in shift],
    }


def sample_strip(*images_u8_chw: np.ndarray) -> np.ndarray:
    """Images side by side (uint8 (C, H, W) each) as one uint8 (H, W*k, C) strip."""
    return np.concatenate([im.transpose(1, 2, 0) for im in images_u8_chw], axis=1)


@dataclass
class NoisyImage:
    """One validation image as every scorer sees it: the same noise draw for all."""

    name: str
    clean_u8: np.ndarray  # uint8 (C, H, W)
    noisy: np.ndarray  # float32 (C, H, W), unclipped
    noisy_u8: np.ndarray  # uint8 (C, H, W)


def noisy_images(images: list[ValImage], noise, seed: int = 0) -> Iterator[NoisyImage]:
    """The protocol's noisy inputs, drawn image after image from one seeded generator.

    Every scorer (the network in :func:`validate`, the classical baselines) walks
    this generator, so they all see the same noise to the bit.
    """
    rng = np.random.default_rng(seed)
    for item in images:
        clean = to_float(item.pixels)
        noisy = noise.val(clean, rng)
        yield NoisyImage(item.name, clip_to_uint8(clean), noisy, clip_to_uint8(noisy))


def validate(
    run: Runner,
    images: list[ValImage],
    noise,
    seed: int = 0,
    samples_dir: Path | None = None,
    samples: int = 0,
    tag: str = "",
    tick: Callable[[], None] | None = None,
) -> ValResult:
    """Mean PSNR of the denoised and of the noisy images, by the reference protocol.

    With ``samples_dir``, the first ``samples`` images are written as
    noisy | denoised | clean strips named ``{tag}{image}.png``. ``tick`` is
    called after each image (a progress bar).
    """
    from n2n_core.data.images import save_image

    out_db, in_db, per, shifts = [], [], [], []
    for k, item in enumerate(noisy_images(images, noise, seed)):
        pred_u8 = infer_uint8(run, item.noisy)
        p_out, p_in = psnr(pred_u8, item.clean_u8), psnr(item.noisy_u8, item.clean_u8)
        out_db.append(p_out)
        in_db.append(p_in)
        shifts.append(colour_shift(pred_u8, item.clean_u8))
        per.append(score_record(item.name, p_out, p_in, shifts[-1]))
        if samples_dir is not None and k < samples:
            stem = Path(item.name).stem
            save_image(
                Path(samples_dir) / f"{tag}{stem}.png",
                sample_strip(item.noisy_u8, pred_u8, item.clean_u8),
            )
        if tick is not None:
            tick()
    if not images:
        raise ValueError("no validation images")
    return ValResult(
        psnr=float(np.mean(out_db)),
        input_psnr=float(np.mean(in_db)),
        images=len(images),
        noise=noise.name,
        seed=seed,
        per_image=per,
        colour=ColourShift.of([item.name for item in images], shifts),
        level=noise_strength(noise),
    )


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
