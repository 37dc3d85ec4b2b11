"""MRI validation: the reference's ``test_db_clamped``, for snapshots and frozen models alike.

Per validation slice (uint8, last row/column dropped as the reference does, so
the spectrum has odd size and an exact centre): the k-space mask is drawn from
``numpy.random.default_rng(seed)`` slice after slice, the zero-filled image is
the network input (bottom/right padded with -0.5, the background, to a multiple
of 32), the output is cropped back and — with ``post_op: fspec`` — the measured
frequencies are written back on the CPU, outside the network (so an ONNX graph
needs no complex numbers). PSNR is ``10 log10(1 / mse)`` of output and truth
both clamped to [-0.5, 0.5], averaged over slices.

``input_psnr`` is the zero-filled reconstruction's: the inverse FFT of the
measured k-space with the missing frequencies set to 0, the standard MRI
baseline. (The network's own input, the same divided by the keep probabilities,
is unbiased but far noisier; its PSNR is kept per slice as ``network_input_psnr``.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from n2n_core.data.mri.dataset import MriSlices
from n2n_core.data.mri.sources import open_mri_slices
from n2n_core.evaluation.protocol import (
    PAD_MULTIPLE,
    PSNR_IDENTICAL,
    Runner,
    ValResult,
    clip_to_uint8,
    torch_runner,
)
from n2n_core.tasks.mri.kspace import (
    data_consistency,
    draw_mask,
    keep_probability,
    spectrum,
    undersample,
)

NOISE_NAME = "bernoulli_spectral"
BACKGROUND = -0.5


def odd_crop(u8: np.ndarray) -> np.ndarray:
    """The reference's 255 x 255 from 256 x 256: drop the last row/column of even sizes."""
    h, w = u8.shape[-2:]
    return u8[..., : h - (1 - h % 2), : w - (1 - w % 2)]


def to_float(u8: np.ndarray) -> np.ndarray:
    return odd_crop(u8).astype(np.float32) / 255.0 - 0.5


def pad_background(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Pad (..., H, W) on the bottom/right with the background value to a multiple of 32."""
    ph, pw = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    if ph == 0 and pw == 0:
        return x
    return torch.nn.functional.pad(x, (0, pw, 0, ph), value=BACKGROUND)


def psnr_clamped(a: torch.Tensor, b: torch.Tensor) -> float:
    """The reference's ``test_db_clamped`` for one image (peak 1, both clamped to [-0.5, 0.5])."""
    mse = float(torch.mean((a.clamp(-0.5, 0.5) - b.clamp(-0.5, 0.5)).double() ** 2))
    return PSNR_IDENTICAL if mse == 0 else -10.0 * math.log10(mse)


def _spectrum_picture(spec: torch.Tensor) -> np.ndarray:
    mag = torch.log1p(torch.fft.fftshift(spec.abs()))
    return (mag / max(float(mag.max()), 1e-6) - 0.5).numpy()


def sample_picture(
    zero_filled: np.ndarray, recon: np.ndarray, clean: np.ndarray, keep: torch.Tensor
) -> np.ndarray:
    """uint8 (2H, 3W): zero-filled | reconstruction | ground truth over the centred mask |
    log-spectrum of the reconstruction | log-spectrum of the ground truth."""
    top = np.concatenate([zero_filled, recon, clean], axis=1)
    mask = torch.fft.fftshift(keep).numpy().astype(np.float32) - 0.5
    bottom = np.concatenate(
        [
            mask,
            _spectrum_picture(torch.fft.fft2(torch.from_numpy(recon))),
            _spectrum_picture(torch.fft.fft2(torch.from_numpy(clean))),
        ],
        axis=1,
    )
    return clip_to_uint8(np.concatenate([top, bottom], axis=0))


def validate_mri(
    run: Runner,
    slices: MriSlices,
    p_at_edge: float,
    post_op: str = "fspec",
    seed: int = 0,
    samples_dir: Path | None = None,
    samples: int = 0,
    tag: str = "",
) -> ValResult:
    """Mean ``test_db_clamped`` of the reconstructions and of the zero-filled inputs."""
    from n2n_core.data.images import save_image

    if len(slices) == 0:
        raise ValueError("no validation slices")
    rng = np.random.default_rng(seed)
    prob_cache: dict[tuple[int, int], torch.Tensor] = {}
    out_db, in_db, per = [], [], []
    # Sample pictures from across the set (centred quantiles: the first and last slices
    # of a subject are the small top and bottom of a head).
    pictured = {int((i + 0.5) * len(slices) / samples) for i in range(samples)}
    for k in range(len(slices)):
        clean = torch.from_numpy(to_float(np.asarray(slices.pixels[k])))
        h, w = clean.shape
        if (h, w) not in prob_cache:
            prob_cache[(h, w)] = keep_probability(h, w, p_at_edge)
        prob = prob_cache[(h, w)]
        keep = draw_mask(prob, torch.from_numpy(rng.random((h, w), dtype=np.float32)))
        net_input, kept = undersample(spectrum(clean), keep, prob)
        zero_filled = torch.fft.ifft2(kept).real
        x = pad_background(net_input)[None, None].numpy()
        y = torch.from_numpy(np.asarray(run(np.ascontiguousarray(x, np.float32)), np.float32))
        y = y[0, 0, :h, :w]
        if post_op == "fspec":
            y = data_consistency(y, kept, keep)
        p_out, p_in = psnr_clamped(y, clean), psnr_clamped(zero_filled, clean)
        out_db.append(p_out)
        in_db.append(p_in)
        name = slices.names[k]
        per.append(
            {
                "name": name,
                "psnr": round(p_out, 2),
                "input_psnr": round(p_in, 2),
                "network_input_psnr": round(psnr_clamped(net_input, clean), 2),
            }
        )
        if samples_dir is not None and k in pictured:
            picture = sample_picture(zero_filled.numpy(), y.numpy(), clean.numpy(), keep)
            if picture.shape[0] < 256:  # small slices (phantoms): enlarge so they can be seen
                k_up = -(-256 // picture.shape[0])
                picture = picture.repeat(k_up, axis=0).repeat(k_up, axis=1)
            save_image(Path(samples_dir) / f"{tag}{name}.png", picture)
    return ValResult(
        psnr=float(np.mean(out_db)),
        input_psnr=float(np.mean(in_db)),
        images=len(slices),
        noise=NOISE_NAME,
        seed=seed,
        per_image=per,
    )


# ---------------------------------------------------------------------------
# the entry points of `validate` and `validate-frozen`


def _preset_of(meta: dict) -> dict:
    preset = meta.get("preset") or {}
    if isinstance(preset, str):  # ONNX metadata props are strings
        try:
            preset = json.loads(preset)
        except ValueError:
            preset = {}
    return preset if isinstance(preset, dict) else {}


def mri_settings(meta: dict) -> tuple[float, str]:
    """(p_at_edge, post_op) a model was trained with; the reference's where unrecorded."""
    preset = _preset_of(meta)
    noise = preset.get("noise") or {}
    mri = preset.get("mri") or {}
    p = float(noise.get("p_at_edge", 0.025)) if noise.get("type") == NOISE_NAME else 0.025
    post_op = str(meta.get("post_op") or mri.get("post_op") or "fspec")
    return p, post_op


def validate_mri_snapshot(net, snap, dataset_dir, seed: int = 0, device="cpu") -> ValResult:
    """``n2n-core validate`` for an MRI snapshot: every slice of the dataset's validation set."""
    p, post_op = mri_settings(snap.meta)
    slices = open_mri_slices(str(dataset_dir), "val")
    return validate_mri(torch_runner(net, device), slices, p, post_op, seed)


def validate_mri_frozen(run: Runner, meta: dict, dataset_dir, seed: int = 0) -> ValResult:
    """``n2n-core validate-frozen`` for an MRI model: fspec applied after the ONNX runner."""
    p, post_op = mri_settings(meta)
    slices = open_mri_slices(str(dataset_dir), "val")
    return validate_mri(run, slices, p, post_op, seed)
