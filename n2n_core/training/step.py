"""One optimisation step, and what it touches: the loop and the benchmark time the same step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from n2n_core.engine.network import Bf16Weights, UNet
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
    # bf16 weights kept between steps (the CPU's one-process bf16 path, see
    # keep_bf16_weights); ``model`` is then this object, and autocast is off.
    bf16: Bf16Weights | None = None


def keep_bf16_weights(
    device: torch.device, precision: str, world_size: int, compiled: bool
) -> bool:
    """Whether a run trains on :class:`Bf16Weights` instead of under autocast.

    Measured on the CPU only (benchmarks/RESULTS.md, "The matrix engine"); DDP needs
    the module's own parameters to carry the gradients, and torch.compile traces the
    module, so both keep autocast.
    """
    return device.type == "cpu" and precision == "bf16" and world_size == 1 and not compiled


def make_optimizer(net: torch.nn.Module, lr: float, device: torch.device, kept_bf16: bool):
    """The run's Adam. Fused (one kernel for every tensor's update) on CUDA, and on the
    CPU's kept-bf16 path, where the per-tensor loop cost ~4 ms a step, 12% of a quickstart
    step; fp32 on the CPU keeps the loop, whose results stay the same to the bit."""
    return torch.optim.Adam(
        net.parameters(),
        lr=lr,
        betas=ADAM_BETAS,
        eps=ADAM_EPS,
        fused=device.type == "cuda" or kept_bf16,
    )


def bf16_parts(net: UNet, parts: StepParts) -> StepParts:
    """``parts`` with the network run on kept bf16 weights."""
    bf16 = Bf16Weights(net)
    return StepParts(parts.task, bf16, parts.optimizer, parts.scaler, None, parts.device, bf16)


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
    if p.bf16 is not None:
        p.bf16.grads_to_master()
    p.scaler.step(p.optimizer)
    p.scaler.update()
    if p.bf16 is not None:
        p.bf16.refresh()
    return loss.detach()
