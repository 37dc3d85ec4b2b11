"""Corruption models, as small objects with a training and a validation draw.

Images live in [-0.5, 0.5] (the reference's convention); noise is added in float
and never clipped. ``train`` corrupts a batch (N, C, H, W) on its own device with
a per-image random strength, the way the reference draws sigma / lambda per
image; ``val`` corrupts one (C, H, W) numpy image at the fixed validation
strength from a seeded ``numpy.random.Generator``, so validation is reproducible
to the bit.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from pydantic import ValidationError

from n2n_core.config.schema import (
    LEVEL_PARAM,
    BernoulliNoise,
    BernoulliSpectralNoise,
    GaussianNoise,
    ImpulseNoise,
    NoNoise,
    PoissonNoise,
    TextNoise,
    format_validation_error,
)
from n2n_core.errors import UserError


def _uniform_per_image(
    n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    u = torch.rand((n, 1, 1, 1), generator=gen, device=device)
    return lo + (hi - lo) * u


def _normal_like(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped and laid out like ``x``.

    Drawn on a contiguous tensor and only then viewed as channels-last: on the
    CPU, ``normal_`` on a permuted view takes ~8x longer than on plain memory.
    """
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        n, c, h, w = x.shape
        buf = torch.empty((n, h, w, c), dtype=x.dtype, device=x.device).normal_(generator=gen)
        return buf.permute(0, 3, 1, 2)
    return torch.empty(x.shape, dtype=x.dtype, device=x.device).normal_(generator=gen)


@dataclass(frozen=True)
class Gaussian:
    """x + N(0, sigma^2); sigma ~ U[train_sigma] / 255 per training image."""

    train_sigma: tuple[float, float] = (0.0, 50.0)
    val_sigma: float = 25.0
    name: str = "gaussian"

    def train(self, x: torch.Tensor, gen: torch.Generator, rng: np.random.Generator):
        lo, hi = self.train_sigma
        sigma = _uniform_per_image(x.shape[0], lo / 255.0, hi / 255.0, gen, x.device)
        # Laid out like x (channels-last from the task) and combined in one in-place
        # pass: no layout conversion before the first convolution.
        noise = _normal_like(x, gen)
        return torch.addcmul(x, noise, sigma, out=noise)

    def val(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (
            x + rng.standard_normal(x.shape, dtype=np.float32) * (self.val_sigma / 255.0)
        ).astype(np.float32)

    def describe(self) -> str:
        return _described("gaussian sigma", self.train_sigma, self.val_sigma)


def _described(what: str, train: tuple[float, float], val: float) -> str:
    """``gaussian sigma 0..50 (validation 25)``; ``gaussian sigma=25`` when training
    and validation use the one value."""
    lo, hi = train
    if lo == hi == val:
        return f"{what}={val:g}"
    span = f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"
    return f"{what} {span} (validation {val:g})"


@dataclass(frozen=True)
class Poisson:
    """poisson(lam * (x + 0.5)) / lam - 0.5; lam ~ U[train_lam] per training image."""

    train_lam: tuple[float, float] = (0.001, 50.0)
    val_lam: float = 30.0
    name: str = "poisson"

    def train(self, x: torch.Tensor, gen: torch.Generator, rng: np.random.Generator):
        lo, hi = self.train_lam
        lam = _uniform_per_image(x.shape[0], lo, hi, gen, x.device)
        rate = (x + 0.5).clamp_min_(0.0) * lam
        if x.device.type == "mps":  # no Poisson sampler on Metal: draw on the CPU
            counts = torch.from_numpy(rng.poisson(rate.cpu().numpy()).astype(np.float32))
            return counts.to(x.device).div_(lam).sub_(0.5)
        return torch.poisson(rate, generator=gen).div_(lam).sub_(0.5)

    def val(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lam = self.val_lam
        rate = np.maximum(x + 0.5, 0.0) * lam
        return (rng.poisson(rate) / lam - 0.5).astype(np.float32)

    def describe(self) -> str:
        return _described("poisson lambda", self.train_lam, self.val_lam)


@dataclass(frozen=True)
class Impulse:
    """Random-valued impulse noise: each pixel, with probability p, gets a uniform random colour."""

    train_p: tuple[float, float] = (0.0, 0.95)
    val_p: float = 0.7
    name: str = "impulse"

    def train(self, x: torch.Tensor, gen: torch.Generator, rng: np.random.Generator):
        n, c, h, w = x.shape
        p = _uniform_per_image(n, *self.train_p, gen, x.device)
        hit = torch.rand((n, 1, h, w), generator=gen, device=x.device) < p
        colours = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) - 0.5
        return torch.where(hit, colours, x)

    def val(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c, h, w = x.shape
        hit = rng.random((1, h, w)) < self.val_p
        colours = rng.random((c, h, w), dtype=np.float32) - 0.5
        return np.where(hit, colours, x).astype(np.float32)

    def describe(self) -> str:
        return _described("impulse p", self.train_p, self.val_p)


@dataclass(frozen=True)
class Bernoulli:
    """Multiplicative Bernoulli noise: each pixel kept with probability ``keep``, else black.

    "Multiplied by 0" is on intensity, [0, 1]: a dropped pixel is -0.5 here. The
    drop is per pixel, all channels together. ``train_masked`` also returns the
    keep mask, so the loss can count only what a target really observed — a
    dropped pixel says nothing about the image, and its expected value is not the
    clean one (it is keep * clean), so plain L2 against it would learn a darkened image.
    """

    train_keep: tuple[float, float] = (0.05, 1.0)
    val_keep: float = 0.5
    name: str = "bernoulli"

    def train_masked(
        self, x: torch.Tensor, gen: torch.Generator, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(corrupted batch, keep mask (N, 1, H, W) of 0/1 in x's dtype)."""
        n, _, h, w = x.shape
        keep = _uniform_per_image(n, *self.train_keep, gen, x.device)
        mask = (torch.rand((n, 1, h, w), generator=gen, device=x.device) < keep).to(x.dtype)
        return (x + 0.5) * mask - 0.5, mask

    def train(self, x: torch.Tensor, gen: torch.Generator, rng: np.random.Generator):
        return self.train_masked(x, gen, rng)[0]

    def val(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        kept = rng.random((1, *x.shape[1:])) < self.val_keep
        return np.where(kept, x, -0.5).astype(np.float32)

    def describe(self) -> str:
        return _described("bernoulli keep", self.train_keep, self.val_keep)


_ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "


@lru_cache(maxsize=64)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def text_overlay(
    h: int, w: int, coverage: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random strings (random length, size, colour, place) until ``coverage`` of pixels is hidden.

    Returns (mask (h, w) bool, colours (3, h, w) float32 in [-0.5, 0.5]).
    """
    from PIL import Image, ImageDraw

    mask_img = Image.new("L", (w, h), 0)
    col_img = Image.new("RGB", (w, h), (0, 0, 0))
    dm, dc = ImageDraw.Draw(mask_img), ImageDraw.Draw(col_img)
    # No anti-aliasing: every covered pixel gets exactly the string's colour.
    dm.fontmode = dc.fontmode = "1"
    target = coverage * h * w
    covered = 0.0
    lo = max(6, min(h, w) // 24)
    hi = max(lo + 1, min(h, w) // 5)
    for i in range(10_000):
        if covered >= target:
            break
        size = int(rng.integers(lo, hi))
        n = int(rng.integers(3, 16))
        text = "".join(_ALPHABET[j] for j in rng.integers(0, len(_ALPHABET), n))
        xy = (int(rng.integers(-w // 8, w)), int(rng.integers(-size // 2, h)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        font = _font(size)
        dm.text(xy, text, fill=255, font=font)
        dc.text(xy, text, fill=colour, font=font)
        if i % 4 == 3 or target - covered < 0.05 * h * w:
            covered = float(np.count_nonzero(np.asarray(mask_img) > 127))
    mask = np.asarray(mask_img) > 127
    colours = np.asarray(col_img, dtype=np.float32).transpose(2, 0, 1) / 255.0 - 0.5
    return mask, colours


@dataclass(frozen=True)
class Text:
    """Text overlay: random strings covering a fraction of the image (the paper's Sec. 3.2)."""

    train_coverage: tuple[float, float] = (0.0, 0.5)
    val_coverage: float = 0.25
    name: str = "text"

    def _apply(self, x: np.ndarray, coverage: float, rng: np.random.Generator) -> np.ndarray:
        c, h, w = x.shape
        mask, colours = text_overlay(h, w, coverage, rng)
        if c != 3:
            colours = colours.mean(axis=0, keepdims=True).repeat(c, axis=0)
        return np.where(mask[None], colours, x).astype(np.float32)

    def train(self, x: torch.Tensor, gen: torch.Generator, rng: np.random.Generator):
        # Text is rasterised with PIL on the CPU; the batch goes back to its device.
        arr = x.detach().float().cpu().numpy()
        out = np.empty_like(arr)
        for i in range(arr.shape[0]):
            out[i] = self._apply(arr[i], float(rng.uniform(*self.train_coverage)), rng)
        return torch.from_numpy(out).to(x.device, x.dtype)

    def val(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._apply(x, self.val_coverage, rng)

    def describe(self) -> str:
        return f"text coverage={self.val_coverage:g}"


@dataclass(frozen=True)
class Identity:
    """No synthetic noise: the data is already corrupted."""

    name: str = "none"

    def train(self, x: torch.Tensor, gen: torch.Generator, rng: np.random.Generator):
        return x.clone()

    def val(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return x.astype(np.float32, copy=True)

    def describe(self) -> str:
        return "none"


def make_noise(cfg) -> Gaussian | Poisson | Impulse | Bernoulli | Text | Identity:
    """The noise object for a preset's ``noise:`` section."""
    if isinstance(cfg, GaussianNoise):
        return Gaussian(tuple(cfg.train_sigma), cfg.val_sigma)
    if isinstance(cfg, PoissonNoise):
        return Poisson(tuple(cfg.train_lam), cfg.val_lam)
    if isinstance(cfg, ImpulseNoise):
        return Impulse(tuple(cfg.train_p), cfg.val_p)
    if isinstance(cfg, BernoulliNoise):
        return Bernoulli(tuple(cfg.train_keep), cfg.val_keep)
    if isinstance(cfg, TextNoise):
        return Text(tuple(cfg.train_coverage), cfg.val_coverage)
    if isinstance(cfg, NoNoise):
        return Identity()
    if isinstance(cfg, BernoulliSpectralNoise):
        raise ValueError("bernoulli_spectral is the MRI corruption; see n2n_core.tasks.mri")
    raise ValueError(f"unknown noise {cfg!r}")


_CONFIGS = {
    "gaussian": GaussianNoise,
    "poisson": PoissonNoise,
    "text": TextNoise,
    "impulse": ImpulseNoise,
    "bernoulli": BernoulliNoise,
    "none": NoNoise,
}


def noise_from_name(
    name: str, **params
) -> Gaussian | Poisson | Impulse | Bernoulli | Text | Identity:
    """For the CLI's ``--noise``: ``gaussian``, ``poisson``, ``text``, ``impulse``,
    ``bernoulli`` or ``none``."""
    if name not in _CONFIGS:
        raise UserError(f"noise {name!r}: expected one of {', '.join(_CONFIGS)}")
    try:
        cfg = _CONFIGS[name](**params)
    except ValidationError as e:
        raise UserError(format_validation_error(e, params, f"noise {name}")) from None
    return make_noise(cfg)


def validation_noise(name: str | None, snap_meta: dict, source: str):
    """The noise a snapshot (or frozen model) is validated with: ``--noise``, else the one
    recorded in it (``source``), with the preset's ``val_*`` parameters when it is that one."""
    kind = name or snap_meta.get("noise") or "gaussian"
    if kind == "none" and not name:
        # Trained on the user's own noisy data: no synthetic noise is known, so
        # clean images are scored at the reference's Gaussian sigma 25.
        kind = "gaussian"
    if kind == "bernoulli_spectral":
        raise UserError("--noise bernoulli_spectral: validate an MRI snapshot without --noise")
    preset = snap_meta.get("preset")
    preset_noise = preset.get("noise") if isinstance(preset, dict) else None
    params = {}
    if isinstance(preset_noise, dict) and preset_noise.get("type") == kind:
        params = {k: v for k, v in preset_noise.items() if k.startswith("val_")}
    try:
        return noise_from_name(str(kind), **params)
    except UserError as e:
        raise UserError(f"{source}: the noise recorded in it is unusable ({e})") from None


def default_level(name: str, preset_noise: dict | None = None) -> float:
    """The validation strength a snapshot was scored at (its preset's), else the default."""
    param = LEVEL_PARAM[name]
    preset_noise = preset_noise or {}
    if preset_noise.get("type") == name and isinstance(preset_noise.get(param), int | float):
        return float(preset_noise[param])
    return float(_CONFIGS[name].model_fields[param].default)


def noise_at_level(name: str, level: float) -> Gaussian | Poisson | Impulse | Text:
    """The validation noise ``name`` at strength ``level``; out of its range is a ``UserError``."""
    param = LEVEL_PARAM.get(name)
    if param is None:
        raise UserError(f"--noise {name}: has no strength to set with --levels")
    try:
        cfg = _CONFIGS[name](**{param: level})
    except ValidationError as e:
        why = e.errors()[0]["msg"]
        raise UserError(
            f"--levels {level:g}: out of range for {name} {param.removeprefix('val_')} ({why})"
        ) from None
    return make_noise(cfg)
