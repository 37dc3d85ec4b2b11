"""What a training step feeds the network and how a run is validated, per task.

The training loop (``training/loop.py``) is task-agnostic: it asks the task for the
batch of a step, the learning rate of a step, the loss, and a validation.
:class:`Task` is that contract; the image task lives here, the user's own data
in ``owndata.py``, the MRI task in ``mri/``; ``registry.py`` picks one for a preset.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from n2n_core.config.schema import Preset
from n2n_core.data.augment import augment_crops
from n2n_core.data.sources import open_train, open_val
from n2n_core.engine.losses import compute_loss, masked_loss
from n2n_core.engine.lr_schedule import learning_rate
from n2n_core.engine.noise import make_noise
from n2n_core.evaluation.protocol import ValResult, validate


def step_seed(seed: int, rank: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed that is a pure function of (seed, rank, step, stream)."""
    return int(
        np.random.SeedSequence([seed, rank, step, stream]).generate_state(2, np.uint64)[0] >> 1
    )


def to_unit_float(u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) on its device -> float (N, C, H, W) in [-0.5, 0.5].

    The permute is a view: the result is channels-last in memory, with no copy.
    uint8 / 255 computes in float32 in one pass.
    """
    return torch.div(u8.permute(0, 3, 1, 2), 255.0).sub_(0.5)


class MaskedTarget(NamedTuple):
    """A training target of which only the pixels where ``keep`` (N, 1, H, W) is 1 count."""

    values: torch.Tensor
    keep: torch.Tensor


class Task(ABC):
    """What a task must provide, and the hooks every task shares.

    A task sets ``channels`` (of the network's input and output), ``noise`` (the
    corruption, with a ``describe()`` for the start line) and ``loss_name``, and
    implements :meth:`make_batch`, :meth:`forward` and :meth:`validate`. The
    schedule (:meth:`lr`, :meth:`adam_beta1`), :meth:`loss` and
    :attr:`val_dataset` have defaults a task may override.
    """

    preset: Preset
    channels: int
    noise: Any
    loss_name: str

    def __init__(self, preset: Preset, device: torch.device, rank: int = 0):
        self.preset = preset
        self.device = device
        self.rank = rank

    def lr(self, step: int) -> float:
        t = self.preset.train
        return learning_rate(step, t.steps, t.lr, t.rampdown, t.rampup)

    def adam_beta1(self, step: int) -> float | None:
        return None  # constant 0.9

    def progress(self, step: int) -> float:
        return step / max(self.preset.train.steps, 1)

    def loss(self, pred: torch.Tensor, target, step: int) -> torch.Tensor:
        if isinstance(target, MaskedTarget):
            return masked_loss(
                self.loss_name, pred, target.values, target.keep, self.progress(step)
            )
        return compute_loss(self.loss_name, pred, target, self.progress(step))

    @property
    def val_dataset(self) -> str:
        return self.preset.data.val or ""

    @abstractmethod
    def make_batch(self, step: int) -> tuple[Any, torch.Tensor]:
        """(network input, training target) of ``step``: a pure function of seed, rank, step."""

    @abstractmethod
    def forward(self, net: torch.nn.Module, inp: Any) -> torch.Tensor:
        """The network's output for a batch's input (the loss compares it with the target)."""

    @abstractmethod
    def validate(
        self, run, samples_dir: Path | None = None, tag: str = "", seed: int = 0
    ) -> ValResult | None:
        """PSNR on the validation set with ``run`` (a Runner); None when there is none."""


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
