"""Classical denoisers scored beside the network: the noisy input, non-local means, BM3D.

Each baseline maps the protocol's noisy float image (C, H, W, in [-0.5, 0.5],
unclipped) to a float image of the same shape; :func:`score_baseline` then runs
it over exactly the noise draws :func:`evaluate.validate` uses and scores it
with the same uint8 mapping and PSNR, so a table row compares like with like.

Both classical methods are told the true noise level (never ``estimate_sigma``):
Gaussian sigma as given; for Poisson the standard deviation of the shot noise at
the image's mean intensity, ``sqrt(mean(x) / lambda)``. Non-local means takes its
patch size, search window and filtering strength from sigma by the table of
Buades, Coll & Morel, "Non-Local Means Denoising", IPOL 2011.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args

import numpy as np

from n2n_core.config.schema import BaselineName
from n2n_core.errors import UserError
from n2n_core.evaluation.protocol import clip_to_uint8, noisy_images, psnr

BASELINES: tuple[str, ...] = get_args(BaselineName)
BM3D_HINT = "install the optional extra: pip install 'n2n[bm3d]' (or pip install bm3d)"

# (sigma upper bound on 0..255, patch radius f, search radius r, h / sigma), IPOL 2011 table 1.
_NLM_GRAY = ((15, 1, 10, 0.40), (30, 2, 10, 0.40), (45, 3, 17, 0.35), (75, 4, 17, 0.35))
_NLM_GRAY_LAST = (5, 17, 0.30)
_NLM_COLOUR = ((25, 1, 10, 0.55), (55, 2, 17, 0.40))
_NLM_COLOUR_LAST = (3, 17, 0.35)


@dataclass(frozen=True)
class NlmParams:
    patch_size: int
    patch_distance: int
    h: float  # on the [0, 1] scale, like sigma


def nlm_params(sigma: float, channels: int) -> NlmParams:
    """Patch size, search distance and strength for noise ``sigma`` (on the [0, 1] scale)."""
    s255 = sigma * 255.0
    rows, last = (_NLM_COLOUR, _NLM_COLOUR_LAST) if channels == 3 else (_NLM_GRAY, _NLM_GRAY_LAST)
    f, r, k = next(((f, r, k) for top, f, r, k in rows if s255 <= top), last)
    return NlmParams(patch_size=2 * f + 1, patch_distance=r, h=k * sigma)


def noise_sigma(noise, noisy: np.ndarray) -> float:
    """The known noise standard deviation of one noisy image, on the [0, 1] scale."""
    if noise.name == "gaussian":
        return float(noise.val_sigma) / 255.0
    if noise.name == "poisson":
        mean = float(np.mean(np.maximum(noisy + 0.5, 0.0)))
        return math.sqrt(mean / float(noise.val_lam))
    raise UserError(
        f"--baselines: non-local means and BM3D need gaussian or poisson noise, not {noise.name}"
    )


def _hwc(x: np.ndarray) -> np.ndarray:
    """(C, H, W) in [-0.5, 0.5] -> (H, W, C) or (H, W) in [0, 1] (unclipped), float64."""
    img = x.transpose(1, 2, 0).astype(np.float64) + 0.5
    return img[..., 0] if img.shape[2] == 1 else img


def _chw(y: np.ndarray, channels: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y[..., None]
    return y.transpose(2, 0, 1)[:channels] - 0.5


def denoise_nlm(noisy: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    c = noisy.shape[0]
    p = nlm_params(sigma, c)
    out = denoise_nl_means(
        _hwc(noisy),
        patch_size=p.patch_size,
        patch_distance=p.patch_distance,
        h=p.h,
        sigma=sigma,
        fast_mode=True,
        channel_axis=-1 if c == 3 else None,
    )
    return _chw(out, c)


def require_bm3d():
    try:
        import bm3d
    except ImportError:
        raise UserError(
            f"--baselines bm3d: the bm3d package is not installed; {BM3D_HINT}"
        ) from None
    return bm3d


def denoise_bm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    bm3d = require_bm3d()
    c = noisy.shape[0]
    img = _hwc(noisy)
    out = bm3d.bm3d_rgb(img, sigma) if c == 3 else bm3d.bm3d(img, sigma)
    return _chw(out, c)


DENOISERS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "nlm": denoise_nlm,
    "bm3d": denoise_bm3d,
}


def check_baselines(names: list[str], noise_name: str) -> None:
    """Refuse before any work: an unknown name, a missing package, a noise they cannot take."""
    for name in names:
        if name not in BASELINES:
            raise UserError(f"--baselines {name}: unknown; choose from {', '.join(BASELINES)}")
    if "bm3d" in names:
        require_bm3d()
    if any(n in DENOISERS for n in names) and noise_name not in ("gaussian", "poisson"):
        raise UserError(
            f"--baselines {','.join(n for n in names if n in DENOISERS)}: non-local means and "
            f"BM3D need gaussian or poisson noise, not {noise_name}"
        )


@dataclass
class BaselineScore:
    name: str
    psnr: float
    seconds: float


def score_baseline(
    name: str, images, noise, seed: int = 0, tick: Callable[[], None] | None = None
) -> BaselineScore:
    """Mean PSNR of a baseline over the protocol's noise draws (``noisy``: the input itself)."""
    t0 = time.perf_counter()
    db = []
    for item in noisy_images(images, noise, seed):
        if name == "noisy":
            out_u8 = item.noisy_u8
        else:
            out_u8 = clip_to_uint8(DENOISERS[name](item.noisy, noise_sigma(noise, item.noisy)))
        db.append(psnr(out_u8, item.clean_u8))
        if tick is not None:
            tick()
    return BaselineScore(name, float(np.mean(db)), time.perf_counter() - t0)
