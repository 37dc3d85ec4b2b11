"""What rank 0 writes while a run trains: metrics, console and log, TensorBoard,
samples, snapshots -- the loop hands each event to one :class:`RunOutput`."""

from __future__ import annotations

from pathlib import Path

import torch

from n2n_core import formatting as fmt
from n2n_core.config.schema import Preset
from n2n_core.engine.console import RunConsole
from n2n_core.engine.snapshots import (
    save_snapshot,
)
from n2n_core.evaluation.protocol import torch_runner
from n2n_core.files.safe import own_folder
from n2n_core.runs.folders import sample_tag
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.records import RankStats
from n2n_core.runs.writer import MetricsWriter
from n2n_core.tasks.base import Task
from n2n_core.training.step import StepParts


class RunOutput:
    """Everything rank 0 writes: metrics, console and log, TensorBoard, samples, snapshots."""

    def __init__(self, run_dir: Path, preset: Preset, writer: MetricsWriter, con: RunConsole, tb):
        self.run_dir, self.preset = run_dir, preset
        self.writer, self.con, self.tb = writer, con, tb
        self.snap_dir = RunPaths(run_dir).snapshots
        self.samples_dir = RunPaths(run_dir).samples
        own_folder(
            self.snap_dir, "snapshots", create=True
        )  # a link planted there is refused, not followed
        own_folder(self.samples_dir, "samples", create=True)
        self.last_psnr: float | None = None

    def progress(
        self, step: int, start: int, loss: float, lr: float, ms: float, eta: float
    ) -> None:
        t = self.preset.train
        if self.tb:
            self.tb.train(step, loss, lr, ms)
        psnr_txt = "" if self.last_psnr is None else f"  PSNR {self.last_psnr:.2f} dB"
        self.con.update_progress(
            step,
            f"loss {loss:.5f}{psnr_txt}  lr {lr:.2e}  {ms:.1f} ms/step  ETA {fmt.clock(eta)}",
        )
        if step % (t.log_every * 10) == 0 or step == t.steps or step - start == t.log_every:
            line = (
                f"step {step:>8d}/{t.steps}  loss {loss:.5f}  lr {lr:.2e}  "
                f"{ms:7.1f} ms/step  ETA {fmt.clock(eta)}"
            )
            if self.con.live:  # the bar shows it; keep the log file complete
                self.con.log_only(line)
            else:
                self.con.print(line)

    def validate(self, step: int, net: torch.nn.Module, task: Task, device: torch.device) -> None:
        net.eval()
        runner = torch_runner(net, device, self.preset.runtime.channels_last)
        res = task.validate(runner, self.samples_dir, sample_tag(step))
        net.train()
        if res is None:
            return
        self.last_psnr = res.psnr
        colour = res.colour.to_json() if res.colour else None
        self.writer.val(step, res.psnr, res.input_psnr, task.val_dataset, res.images, colour)
        if self.tb:
            self.tb.val(step, res.psnr, res.input_psnr)
            self.tb.sample_images(step, self.samples_dir)
        self.con.print(
            f"step {step:>8d}  val PSNR {res.psnr:.2f} dB (noisy input {res.input_psnr:.2f} dB)"
            + (f", {res.colour.describe()}" if res.colour else "")
        )

    def sys(self, step: int, ranks: tuple[RankStats, ...]) -> None:
        self.writer.sys(step, ranks)
        if self.tb:
            self.tb.sys(step, ranks)

    def snapshot(self, name: str, step: int, p: StepParts, net, world_size: int) -> str:
        """Write ``snapshots/name`` (weights and resume state); "" or why it could not."""
        path = self.snap_dir / name
        preset = self.preset
        meta = {
            "step": step,
            "preset": preset.to_dict(),
            "task": preset.task,
            "noise": preset.noise.type,
            "targets": preset.targets,
            "in_channels": p.task.channels,
            "residual": preset.network.residual,
            "padding": preset.network.padding,
            "val_psnr": None if self.last_psnr is None else round(self.last_psnr, 2),
            "world_size": world_size,
        }
        try:
            save_snapshot(path, net, meta, p.optimizer, p.scaler)
            return ""
        except OSError as e:
            why = e.strerror or e
            quietly(
                self.writer.event, step, f"snapshot failed at step {step}: {why}", level="error"
            )
            reason = f"{path}: cannot write snapshot ({why}) at step {step}"
            quietly(self.con.print, f"error: {reason}", style="red")
            return reason


def quietly(fn, *args, **kwargs) -> None:
    """Report a failure on a channel that may itself be failing (the same full disk)."""
    if not fn:
        return
    try:
        fn(*args, **kwargs)
    except OSError:
        pass
