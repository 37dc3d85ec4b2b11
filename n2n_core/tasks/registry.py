"""Which task trains a preset: the registry above the tasks (no task imports it)."""

from __future__ import annotations

import torch

from n2n_core.config.schema import Preset
from n2n_core.tasks.base import Task
from n2n_core.tasks.image import ImageTask


def task_class(preset: Preset) -> type[Task]:
    if preset.task == "mri":
        from n2n_core.tasks.mri.task import MriTask

        return MriTask
    if preset.data.train_spec.own_mode:
        from n2n_core.tasks.owndata import (
            OwnDataTask,
        )  # the user's own noisy data, no synthetic noise

        return OwnDataTask
    return ImageTask


def make_task(preset: Preset, device: torch.device, rank: int = 0, load_val: bool = True) -> Task:
    return task_class(preset)(preset, device, rank, load_val=load_val)
