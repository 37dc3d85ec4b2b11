"""The contract between the training loop and a task.

The training loop (``training/loop.py``) is task-agnostic: it asks the task for
the batch of a step, the learning rate of a step, the loss, and a validation.
:class:`Task` is that contract, with the helpers every task shares (the data
order as a pure function of seed, rank and step).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from n2n_core.config.schema import Preset
from n2n_core.engine.losses import compute_loss, masked_loss
from n2n_core.engine.lr_schedule import learning_rate
from n2n_core.evaluation.protocol import ValResult


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
