"""Learning-rate schedules as pure functions of the step (after the reference).

``rampdown_lr`` is NVlabs/noise2noise ``compute_ramped_down_lrate``: constant,
then a cosine-squared ramp-down to zero over the last ``rampdown`` fraction.
An optional linear ``rampup`` (fraction of steps) is applied first.
"""

from __future__ import annotations

import math


def rampdown_factor(step: int, total: int, rampdown: float) -> float:
    start = total * (1.0 - rampdown)
    if rampdown <= 0 or step < start:
        return 1.0
    t = ((step - start) / rampdown) / total
    return (0.5 + math.cos(t * math.pi) / 2.0) ** 2


def rampup_factor(step: int, total: int, rampup: float) -> float:
    length = total * rampup
    if length <= 0 or step >= length:
        return 1.0
    return step / length


def learning_rate(step: int, total: int, lr: float, rampdown: float, rampup: float = 0.0) -> float:
    """Learning rate used for the update that follows ``step`` completed steps."""
    return lr * rampup_factor(step, total, rampup) * rampdown_factor(step, total, rampdown)
