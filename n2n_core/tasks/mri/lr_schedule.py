"""The reference MRI schedule (NVlabs ``train_mri.py``) as pure functions of the epoch.

Per epoch: learning rate ``lr_max * rampup * rampdown`` with a Gaussian-shaped
warm-up over the first ``rampup_epochs`` and a Gaussian ramp-down over the last
``rampdown_epochs``; Adam's beta1 follows the ramp-down from 0.9 to 0.5. Our loop
counts steps, so ``train.steps`` is split into ``mri.epochs`` equal schedule
epochs and the values are constant within one, as in the reference.
"""

from __future__ import annotations

import math


def rampup(epoch: int, length: int) -> float:
    if epoch >= length:
        return 1.0
    p = 1.0 - max(0.0, float(epoch)) / float(length)
    return math.exp(-p * p * 5.0)


def rampdown(epoch: int, epochs: int, length: int) -> float:
    start = epochs - length
    if length <= 0 or epoch < start:
        return 1.0
    e = (epoch - start) * 0.5
    return math.exp(-(e * e) / length)


def epoch_of(step: int, steps: int, epochs: int) -> int:
    """The schedule epoch a step falls in, when ``steps`` are split into ``epochs``."""
    return min(epochs - 1, step * epochs // max(steps, 1))


def mri_learning_rate(
    step: int, steps: int, lr_max: float, epochs: int, rampup_epochs: int, rampdown_epochs: int
) -> float:
    e = epoch_of(step, steps, epochs)
    return lr_max * rampup(e, rampup_epochs) * rampdown(e, epochs, rampdown_epochs)


def mri_adam_beta1(
    step: int, steps: int, epochs: int, rampdown_epochs: int, initial: float, final: float
) -> float:
    r = rampdown(epoch_of(step, steps, epochs), epochs, rampdown_epochs)
    return r * initial + (1.0 - r) * final
