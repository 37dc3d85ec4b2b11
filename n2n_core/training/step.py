"""One optimisation step, and what it touches: the loop and the benchmark time the same step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from n2n_core.engine.sysmon import SysMonitor
from n2n_core.tasks.base import Task

ADAM_BETAS = (0.9, 0.99)


ADAM_EPS = 1e-8


@dataclass
class StepParts:
    """What one training step touches; the benchmark times the same step with the same parts."""

    task: Task
    model: torch.nn.Module  # what the step calls: DDP / compiled wrapper, or the network itself
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    device: torch.device


def train_step(p: StepParts, step: int, mon: SysMonitor | None = None) -> torch.Tensor:
    """One optimisation step on the batch of ``step``; the loss, detached (no device sync)."""
    inp, target = p.task.make_batch(step)
    if mon is not None:
        mon.data_ready()
    with torch.autocast(p.device.type, dtype=p.amp_dtype, enabled=p.amp_dtype is not None):
        pred = p.task.forward(p.model, inp)
    loss = p.task.loss(pred, target, step)
    p.optimizer.zero_grad(set_to_none=True)
    p.scaler.scale(loss).backward()
    p.scaler.step(p.optimizer)
    p.scaler.update()
    return loss.detach()
