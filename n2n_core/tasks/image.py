"""The image task: photos (or the user's clean images) with synthetic noise drawn
each step, Noise2Noise or Noise2Clean targets, validated by the PSNR protocol.

The contract is :class:`~n2n_core.tasks.base.Task`; the user's own noisy data is
``owndata.py``, MRI is ``mri/``; ``registry.py`` picks one for a preset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from n2n_core.config.schema import Preset
from n2n_core.data.augment import augment_crops
from n2n_core.data.sources import open_train, open_val
from n2n_core.engine.noise import make_noise
from n2n_core.evaluation.protocol import ValResult, validate
from n2n_core.tasks.base import MaskedTarget, Task, step_seed, to_unit_float


class ImageTask(Task):
    """Synthetic-noise image denoising (Gaussian, Poisson, text, impulse)."""

    channels = 3

    def __init__(self, preset: Preset, device: torch.device, rank: int = 0, load_val: bool = True):
        super().__init__(preset, device, rank)
        t = preset.train
        self.noise = make_noise(preset.noise)
        self.loss_name = preset.resolved_loss()
        self.sampler = open_train(preset.data.train, t.crop, self.channels)
        self.val_images = []
        if load_val and preset.data.val:
            self.val_images = open_val(preset.data.val, self.channels, preset.data.val_max_images)
        shape = (t.batch, t.crop, t.crop, self.channels)
        # CUDA: crops land straight in pinned host memory and go up with a non-blocking
        # copy; two buffers alternate, each reused only after its copy has finished.
        self._pinned = device.type == "cuda"
        if self._pinned:
            self._bufs = [torch.empty(shape, dtype=torch.uint8, pin_memory=True) for _ in "ab"]
            self._copied = [None, None]
        else:
            self._bufs = [torch.from_numpy(np.empty(shape, np.uint8))]
        self._turn = 0

    # -- training -------------------------------------------------------------

    def clean_batch(self, step: int) -> torch.Tensor:
        """The clean crops of ``step`` as float (N, C, H, W) in [-0.5, 0.5], channels-last on device."""
        rng = np.random.default_rng(step_seed(self.preset.train.seed, self.rank, step))
        k = self._turn
        self._turn = (k + 1) % len(self._bufs)
        u8 = self._bufs[k]
        if self._pinned and self._copied[k] is not None:
            self._copied[k].synchronize()  # the previous copy from this buffer is done
        aug = self.preset.data.augment
        self.sampler.sample(self.preset.train.batch, rng, u8.numpy(), aug.min_scale)
        if aug.flips or aug.channels:
            # Its own stream: the crops a step draws do not depend on whether it augments.
            aug_rng = np.random.default_rng(step_seed(self.preset.train.seed, self.rank, step, 2))
            augment_crops(u8.numpy(), aug_rng, aug.flips, aug.channels)
        x = u8.to(self.device, non_blocking=self._pinned)
        if self._pinned:
            self._copied[k] = torch.cuda.Event()
            self._copied[k].record()
        return to_unit_float(x)

    def make_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | MaskedTarget]:
        """(network input, training target) for ``step``: two independent draws for N2N.

        With a noise that knows which pixels it dropped (Bernoulli), a noisy target
        comes with its keep mask, for the loss to count only those pixels.
        """
        seed = step_seed(self.preset.train.seed, self.rank, step, stream=1)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        rng = np.random.default_rng(seed)
        clean = self.clean_batch(step)
        noisy = self.noise.train(clean, gen, rng)
        if self.preset.targets == "clean":
            return noisy, clean
        if hasattr(self.noise, "train_masked"):
            return noisy, MaskedTarget(*self.noise.train_masked(clean, gen, rng))
        return noisy, self.noise.train(clean, gen, rng)

    def forward(self, net: torch.nn.Module, inp: torch.Tensor) -> torch.Tensor:
        return net(inp)

    # -- validation -----------------------------------------------------------

    def validate(
        self, run, samples_dir: Path | None = None, tag: str = "", seed: int = 0
    ) -> ValResult | None:
        if not self.val_images:
            return None
        return validate(
            run,
            self.val_images,
            self.noise,
            seed=seed,
            samples_dir=samples_dir,
            samples=self.preset.data.samples,
            tag=tag,
        )
