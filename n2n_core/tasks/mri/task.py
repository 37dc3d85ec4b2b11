"""The MRI task's training hooks: Noise2Noise from independently undersampled spectra.

A step (after NVlabs ``train_mri.py``): ``train.batch`` whole slices (odd size, the
last row/column dropped), each rolled by a random (dy, dx) up to
``mri.translate`` with its spectrum phase-shifted to match; one Bernoulli mask
gives the network input (the zero-filled image) and the measured spectrum; the
target is a second, independent undersampling (N2N, ``targets: noisy``) or the
clean slice (N2C). The network output goes through ``fspec`` (data consistency);
the loss is L2. The reference's epoch schedule drives lr and Adam's beta1.

The spectral work runs on the training device when it has complex FFTs and on
the CPU otherwise (``spectral.spectral_device``), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from n2n_core.config.schema import MriConfig, Preset
from n2n_core.data.mri.dataset import MriSlices
from n2n_core.data.mri.sources import open_mri_slices
from n2n_core.evaluation.protocol import ValResult
from n2n_core.tasks.base import Task, step_seed
from n2n_core.tasks.mri.kspace import (
    bernoulli_mask,
    fspec,
    keep_probability,
    roll_with_phase,
    spectral_device,
    spectrum,
    undersample,
)
from n2n_core.tasks.mri.lr_schedule import mri_adam_beta1, mri_learning_rate
from n2n_core.tasks.mri.validation import odd_crop, pad_background, validate_mri


@dataclass(frozen=True)
class SpectralNoise:
    """What the console and snapshots show for the MRI corruption."""

    p_at_edge: float = 0.025
    kept_fraction: float = 0.0
    name: str = "bernoulli_spectral"

    def describe(self) -> str:
        return f"bernoulli_spectral p_at_edge={self.p_at_edge:g} (~{self.kept_fraction:.1%} kept)"


@dataclass
class MriBatch:
    """The network input of a step and what fspec needs to write the measurements back."""

    image: torch.Tensor  # (N, 1, h, w) zero-filled images, on the training device
    kept: torch.Tensor  # (N, h, w) complex measured spectrum, on the spectral device
    keep: torch.Tensor  # (N, h, w) bool mask, on the spectral device


class EpochOrder:
    """Every slice once per data epoch, in a fresh order; a pure function of (seed, rank, step)."""

    def __init__(self, n: int, seed: int, rank: int):
        self.n, self.seed, self.rank = n, seed, rank
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            rng = np.random.default_rng([self.seed, self.rank, epoch, 0x4D5249])
            self._perms[epoch] = rng.permutation(self.n)
        return self._perms[epoch]

    def indices(self, step: int, batch: int) -> np.ndarray:
        pos = np.arange(step * batch, (step + 1) * batch)
        return np.array([self._perm(int(p // self.n))[p % self.n] for p in pos])


class MriTask(Task):
    channels = 1

    def __init__(self, preset: Preset, device: torch.device, rank: int = 0, load_val: bool = True):
        super().__init__(preset, device, rank)
        self.cfg = preset.mri or MriConfig()
        self.loss_name = preset.resolved_loss()
        self.train: MriSlices = open_mri_slices(preset.data.train, "train")
        self.order = EpochOrder(len(self.train), preset.train.seed, rank)
        h, w = odd_crop(self.train.pixels[:1]).shape[-2:]
        self.sdev = spectral_device(device)
        p = preset.noise.p_at_edge
        self.prob = keep_probability(h, w, p, device=self.sdev)
        self.noise = SpectralNoise(p, float(self.prob.mean()))
        self.val: MriSlices | None = None
        if load_val and preset.data.val:
            self.val = open_mri_slices(preset.data.val, "val").subset(preset.data.val_max_images)

    # -- schedule -------------------------------------------------------------

    def lr(self, step: int) -> float:
        t, c = self.preset.train, self.cfg
        return mri_learning_rate(step, t.steps, t.lr, c.epochs, c.rampup_epochs, c.rampdown_epochs)

    def adam_beta1(self, step: int) -> float:
        c = self.cfg
        return mri_adam_beta1(
            step,
            self.preset.train.steps,
            c.epochs,
            c.rampdown_epochs,
            c.beta1_initial,
            c.beta1_final,
        )

    # -- training -------------------------------------------------------------

    def clean_batch(self, step: int) -> torch.Tensor:
        """The clean (N, h, w) slices of ``step`` in [-0.5, 0.5], on the spectral device."""
        idx = self.order.indices(step, self.preset.train.batch)
        u8 = torch.from_numpy(odd_crop(np.asarray(self.train.pixels[idx])))
        return u8.to(self.sdev).float().div_(255.0).sub_(0.5)

    def make_batch(self, step: int) -> tuple[MriBatch, torch.Tensor]:
        """(network input, target) of ``step``: two independent undersamplings for N2N."""
        seed = step_seed(self.preset.train.seed, self.rank, step, stream=1)
        rng = np.random.default_rng(seed)
        gen = torch.Generator(device=self.sdev).manual_seed(seed)
        clean = self.clean_batch(step)
        n = clean.shape[0]
        spec = spectrum(clean)
        if self.cfg.translate:
            t = self.cfg.translate
            dy, dx = torch.from_numpy(rng.integers(-t, t + 1, size=(2, n)))
            clean, spec = roll_with_phase(clean, spec, dy, dx)
        keep = bernoulli_mask(self.prob, n, gen)
        image, kept = undersample(spec, keep, self.prob)
        if self.preset.targets == "noisy":
            target, _ = undersample(spec, bernoulli_mask(self.prob, n, gen), self.prob)
        else:
            target = clean
        batch = MriBatch(image[:, None].to(self.device), kept, keep)
        return batch, target[:, None].to(self.device)

    def forward(self, net: torch.nn.Module, inp: MriBatch) -> torch.Tensor:
        h, w = inp.image.shape[-2:]
        x = pad_background(inp.image)
        if self.preset.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = net(x)[:, :, :h, :w]
        if self.cfg.post_op == "fspec":
            y = fspec(y[:, 0], inp.kept, inp.keep)[:, None]
        return y

    # -- validation -----------------------------------------------------------

    def validate(
        self, run, samples_dir: Path | None = None, tag: str = "", seed: int = 0
    ) -> ValResult | None:
        if not self.val:
            return None
        return validate_mri(
            run,
            self.val,
            self.noise.p_at_edge,
            self.cfg.post_op,
            seed=seed,
            samples_dir=samples_dir,
            samples=self.preset.data.samples,
            tag=tag,
        )
