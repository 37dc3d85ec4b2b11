"""k-space: undersampling masks, corruption, data consistency, shifts. Pure torch functions.

Spectra are kept in ``torch.fft``'s own order (DC at index [0, 0]) rather than the
reference's centred order: the mathematics is the same and no shift is needed
anywhere but in pictures. A frequency index ``i`` of an axis of length ``n`` is
the signed frequency ``i`` for ``i <= n // 2`` and ``i - n`` above; its Hermitian
partner is ``-i mod n``.

The corruption is the reference's ``bspec`` (NVlabs ``train_mri.py``): frequency
``f`` at radius ``r = |f|`` is kept with probability ``p(r) = p_at_edge ** (r / (w // 2))``
(so ``p_at_edge`` at the middle of an edge; ~10% kept on average at 0.025), kept
values are divided by ``p`` so the zero-filled image is unbiased, and the mask is
Hermitian-symmetric so that image stays real.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


def signed_frequencies(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer frequency of each FFT index of an axis of length ``n`` (float32)."""
    return torch.fft.fftfreq(n, d=1.0 / n, device=device).round()


def keep_probability(
    h: int, w: int, p_at_edge: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """(h, w) keep-probability of each frequency: ``p_at_edge ** (r / (w // 2))``; 1 at DC."""
    fy = signed_frequencies(h, device)
    fx = signed_frequencies(w, device)
    r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return torch.pow(torch.tensor(p_at_edge, device=device), r / (w // 2))


def hermitian_mirror(t: torch.Tensor) -> torch.Tensor:
    """``t`` at the partner frequency: out[..., i, j] = t[..., -i mod h, -j mod w]."""
    return torch.roll(torch.flip(t, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))


@lru_cache(maxsize=16)
def _canonical_half(h: int, w: int) -> torch.Tensor:
    """True at the one frequency of each Hermitian pair that owns the pair's random draw."""
    idx = torch.arange(h * w).reshape(h, w)
    return idx <= hermitian_mirror(idx)


def draw_mask(prob: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Bernoulli keep-mask (bool, shape of ``u``) from uniforms ``u`` in [0, 1).

    Both frequencies of a Hermitian pair use the same uniform (the canonical
    one's), so the mask is exactly symmetric and each pair is kept with
    probability ``prob``. (The reference draws two and ANDs them with the square
    trick ``u**2 < p``; for odd sizes, its case, that is the same distribution.)
    """
    h, w = u.shape[-2:]
    canon = _canonical_half(h, w).to(u.device)
    shared = torch.where(canon, u, hermitian_mirror(u))
    return shared < prob


def bernoulli_mask(
    prob: torch.Tensor, batch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(batch, h, w) independent keep-masks drawn with ``generator`` on ``prob``'s device."""
    u = torch.rand((batch, *prob.shape), generator=generator, device=prob.device)
    return draw_mask(prob, u)


def spectrum(img: torch.Tensor) -> torch.Tensor:
    """Complex spectrum of real images (..., h, w), in float32 precision at least."""
    return torch.fft.fft2(img.float() if img.dtype in (torch.float16, torch.bfloat16) else img)


def undersample(
    spec: torch.Tensor, keep: torch.Tensor, prob: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(zero-filled image, measured spectrum) of ``spec`` seen through ``keep``.

    The measured spectrum holds the true values at kept frequencies and 0
    elsewhere (what the data-consistency step writes back); the zero-filled
    image is the inverse FFT of the kept values divided by their keep
    probability, the reference's unbiased network input.
    """
    kept = spec * keep
    zero_filled = torch.fft.ifft2(kept / prob).real
    return zero_filled, kept


def data_consistency(pred: torch.Tensor, kept: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``fspec``: the measured frequencies of the input written back into ``pred``'s spectrum."""
    mixed = torch.where(keep, kept, torch.fft.fft2(pred))
    return torch.fft.ifft2(mixed).real


def phase_ramp(h: int, w: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """(N, h, w) complex factors that shift a spectrum as rolling its image by (dy, dx)."""
    fy = signed_frequencies(h, dy.device)
    fx = signed_frequencies(w, dy.device)
    dy = dy.to(torch.float64)[:, None, None]
    dx = dx.to(torch.float64)[:, None, None]
    angle = -2.0 * math.pi * (fy[None, :, None] * dy / h + fx[None, None, :] * dx / w)
    return torch.polar(torch.ones_like(angle), angle).to(torch.complex64)


def roll_with_phase(
    img: torch.Tensor, spec: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll each image (N, h, w) by its own (dy, dx) and shift its spectrum to match."""
    rolled = torch.stack(
        [
            torch.roll(im, (int(a), int(b)), dims=(-2, -1))
            for im, a, b in zip(img, dy.tolist(), dx.tolist(), strict=True)
        ]
    )
    ramp = phase_ramp(img.shape[-2], img.shape[-1], dy.cpu(), dx.cpu())
    return rolled, spec * ramp.to(spec.device, spec.dtype)


# ---------------------------------------------------------------------------
# devices without complex numbers (the Ascend port dropped fspec there; we move it)


@lru_cache(maxsize=8)
def _complex_ok(device: str) -> bool:
    if device.startswith("cpu"):
        return True
    try:
        x = torch.ones(2, 4, 4, device=device)
        y = torch.fft.ifft2(torch.where(x > 0, torch.fft.fft2(x), 0)).real
        return bool(torch.isfinite(y).all().item())
    except Exception:  # no kernel, no complex dtype, a backend error: all mean "not here"
        return False


def spectral_device(device: torch.device | str) -> torch.device:
    """``device`` when it runs complex FFTs, else the CPU."""
    device = torch.device(device)
    return device if _complex_ok(str(device)) else torch.device("cpu")


def fspec(pred: torch.Tensor, kept: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Data consistency for a network output on any device, in float32, differentiable.

    Runs where ``kept`` lives (the spectral device) and returns on ``pred``'s
    device; autocast is off so the FFT never runs in half precision.
    """
    with torch.autocast(pred.device.type, enabled=False):
        out = data_consistency(pred.float().to(kept.device), kept, keep.to(kept.device))
    return out.to(pred.device)
