"""The training loop: one function, readable top to bottom.

Every rank runs :func:`train_worker`. Under torchrun (``WORLD_SIZE > 1``) the
network is wrapped in DDP, each rank draws its own crops (the data order is a
pure function of seed, rank and step), and ``train.batch`` is per process. Only
rank 0 writes the run folder: metrics, log, samples, snapshots.

Stopping: SIGINT/SIGTERM set a flag; one process acts on it after the step under
way, several ranks agree on it at the next log step; rank 0 writes a snapshot
and the run ends ``stopped`` (a second Ctrl-C exits at once). A non-finite loss
ends the run ``failed`` (in fp16 the loss scaler skips such steps instead)
without overwriting the last good snapshot.
"""

from __future__ import annotations

import errno
import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from n2n_core import formatting as fmt
from n2n_core.config.schema import Preset
from n2n_core.engine.console import RunConsole
from n2n_core.engine.device import (
    AUTOCAST_DTYPES,
    apply_math_mode,
    backend_for,
    check_precision,
    resolve_device,
    resolve_precision,
    set_rank_device,
    set_threads,
)
from n2n_core.engine.network import SMALLEST_SOUND_CROP, UNet
from n2n_core.engine.snapshots import (
    restore_training_state,
    resume_point,
    snapshot_name,
)
from n2n_core.engine.sysmon import SysMonitor, gather_ranks
from n2n_core.errors import EXIT_STOPPED, EXIT_USER, UserError
from n2n_core.files.atomic import remove_orphan_temps
from n2n_core.process import ompenv
from n2n_core.process.identity import own_identity, pid_alive
from n2n_core.process.signals import StopFlag
from n2n_core.runs.info import read_run_info, update_run_info
from n2n_core.runs.layout import FINAL_SNAPSHOT, RunPaths
from n2n_core.runs.provenance import record_torch_state
from n2n_core.runs.summary import run_state
from n2n_core.runs.writer import MetricsWriter, drop_metrics_after
from n2n_core.tasks.base import Task
from n2n_core.tasks.registry import make_task
from n2n_core.training.output import RunOutput, quietly
from n2n_core.training.step import (
    StepParts,
    bf16_parts,
    keep_bf16_weights,
    make_optimizer,
    train_step,
)


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> Dist:
    return Dist(
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def set_schedule(optimizer: torch.optim.Optimizer, task: Task, step: int) -> float:
    """The learning rate (and Adam's beta1, where the task ramps it) for ``step``; returns the lr."""
    lr = task.lr(step)
    beta1 = task.adam_beta1(step)
    for g in optimizer.param_groups:
        g["lr"] = lr
        if beta1 is not None:
            g["betas"] = (beta1, g["betas"][1])
    return lr


def small_crop_note(crop: int) -> str:
    return (
        f"train.crop {crop}: below {SMALLEST_SOUND_CROP}, the U-Net's deepest layer trains on "
        "1x1 maps and full-size images can come out wrong; fine for a smoke test, "
        f"use {SMALLEST_SOUND_CROP} or more to train a model"
    )


class StepTimer:
    """ms per training step between log steps; validation and snapshot time left out."""

    def __init__(self) -> None:
        self.t_last = time.perf_counter()
        self.steps = 0
        self.avg: float | None = None  # smoothed, for the ETA

    def lap(self) -> float:
        now = time.perf_counter()
        ms = (now - self.t_last) * 1000.0 / max(self.steps, 1)
        self.avg = ms if self.avg is None else 0.9 * self.avg + 0.1 * ms
        self.t_last, self.steps = now, 0
        return ms

    def restart(self) -> None:
        self.t_last = time.perf_counter()


def agree(
    mean_loss: torch.Tensor, stop_requested: bool, d: Dist, sys_due: bool = False
) -> tuple[float, bool, bool]:
    """The loss averaged over ranks, whether any rank was asked to stop, and whether
    any rank has a fresh system sample (then all of them gather now)."""
    flags = torch.tensor([float(stop_requested), float(sys_due)], device=mean_loss.device)
    stats = torch.cat([mean_loss.reshape(1), flags])
    if d.world_size > 1:
        dist.all_reduce(stats)
        stats[0] /= d.world_size
    return float(stats[0]), float(stats[1]) > 0, float(stats[2]) > 0


@dataclass
class Progress:
    """How far the loop got and, when the run failed, why (read after an exception too)."""

    step: int = 0
    reason: str = ""


def due(every: int, step: int) -> bool:
    """Whether a periodic action (``every`` steps; 0: never) falls on ``step``."""
    return bool(every and step % every == 0)


def train_loop(
    p: StepParts,
    net: torch.nn.Module,
    preset: Preset,
    d: Dist,
    start: int,
    stop: StopFlag,
    out: RunOutput | None,
    progress: Progress,
    mon: SysMonitor | None = None,
) -> str:
    """Train from ``start`` to ``train.steps``; the final status. ``out`` is rank 0's writes,
    ``mon`` this rank's system sampler (its records go through rank 0's ``out``)."""
    t = preset.train
    task, device = p.task, p.device
    net.train()
    if out:
        out.con.start_progress(t.steps, start)
    loss_sum = torch.zeros((), device=device)
    n_sum = 0
    timer = StepTimer()
    t_begin = time.time()
    step = start
    while step < t.steps:
        if mon is not None:
            mon.step_begin()
        lr = set_schedule(p.optimizer, task, step)
        loss_sum += train_step(p, step, mon)
        n_sum += 1
        step += 1
        progress.step = step
        timer.steps += 1

        # Validation and snapshot steps are log steps too: the loss is checked for
        # non-finite values (and ranks agree on a stop) before anything is saved.
        # One process needs no agreement: it stops after the step under way, not up
        # to log_every steps later (minutes at a paper-size crop on a CPU).
        if (
            due(t.log_every, step)
            or step == t.steps
            or due(t.val_every, step)
            or due(t.snapshot_every, step)
            or (stop.requested and d.world_size == 1)
        ):
            mean_loss, stop_now, sys_now = agree(
                loss_sum / max(n_sum, 1), stop.requested, d, mon is not None and mon.due()
            )
            ms = timer.lap()
            loss_sum.zero_()
            n_sum = 0
            if out:
                out.writer.train(step, mean_loss, lr, ms)
            if not math.isfinite(mean_loss) and p.amp_dtype is not torch.float16:
                if out:
                    msg = f"non-finite loss at step {step}; stopped, last good snapshot kept"
                    out.writer.event(step, msg, level="error")
                    out.con.print(
                        f"error: non-finite loss ({mean_loss}) at step {step}; run failed",
                        style="red",
                    )
                progress.reason = f"non-finite loss at step {step}; last good snapshot kept"
                return "failed"
            if sys_now and mon is not None:
                sys_ranks = gather_ranks(mon, d.world_size, device)
                if sys_ranks is not None and out:
                    out.sys(step, sys_ranks)
            if out:
                out.progress(step, start, mean_loss, lr, ms, timer.avg * (t.steps - step) / 1000.0)
            if stop_now and step < t.steps:
                if out:
                    by = stop.signal_name or "signal"
                    why = out.snapshot(snapshot_name(step), step, p, net, d.world_size)
                    if why:
                        # Not resumable from here: a "stopped" would promise what is lost.
                        progress.reason = f"stopped by {by} at step {step}, but {why}"
                        quietly(out.writer.event, step, progress.reason, level="error")
                        quietly(out.con.print, f"error: {progress.reason}", style="red")
                        return "failed"
                    out.writer.event(
                        step,
                        f"stopped by {by} at step {step}; resume with `n2n-core resume {out.run_dir}`",
                    )
                    out.con.print(f"stopped at step {step}; snapshot written")
                return "stopped"

        paused = False
        if due(t.val_every, step) and step < t.steps and out:
            out.validate(step, net, task, device)
            paused = True
        if due(t.snapshot_every, step) and step < t.steps and out:
            progress.reason = out.snapshot(snapshot_name(step), step, p, net, d.world_size)
            if progress.reason:
                return "failed"
            paused = True
        if d.world_size > 1 and due(t.val_every, step):
            dist.barrier()
        if paused:  # ms/step measures training only, not validation or snapshot I/O
            timer.restart()
            if mon is not None:
                mon.pause()

    if out:
        out.validate(step, net, task, device)
        names = [snapshot_name(step)] if due(t.snapshot_every, step) else []
        for name in [*names, FINAL_SNAPSHOT]:
            progress.reason = out.snapshot(name, step, p, net, d.world_size)
            if progress.reason:
                return "failed"
        took = time.time() - t_begin
        resumed = finished_times(out.run_dir, took)
        out.writer.event(step, f"finished in {fmt.clock(took)}{resumed}")
        out.con.print(f"finished {step} steps in {fmt.clock(took)}{resumed}")
    return "finished"


def finished_times(run_dir: Path, took: float) -> str:
    """After a stop and a resume, what ``finished in`` leaves out: the training time of
    every session and the wall time since the run started (``""`` for one session)."""
    now = time.time()
    v = run_state(run_dir).values
    if v.sessions < 2:
        return ""
    trained = v.elapsed_s(now)
    info = read_run_info(run_dir)
    started = info.started if info is not None else None
    text = f" this session; {fmt.clock(trained if trained is not None else took)} of training"
    text += f" over {v.sessions} sessions"
    if started is not None and now >= started:
        text += f", {fmt.clock(now - started)} wall time since the run started"
    return text


def train_worker(run_dir: Path, resume: bool = False, stop: StopFlag | None = None) -> str:
    """Train the preset saved in ``run_dir``; returns the final status (rank 0's view).

    ``stop``: a flag the caller installed earlier (a rank does, before importing
    torch); a stop it already caught ends the run at its first agreed step."""
    from n2n_core.config.preset import load_preset

    run_dir = Path(run_dir)
    preset: Preset = load_preset(RunPaths(run_dir).preset)
    d = dist_from_env()
    rt, t = preset.runtime, preset.train

    device = resolve_device(rt.device, d.local_rank)
    if d.world_size > 1:
        set_rank_device(device)
        # A peer that died (its node's launcher killed) fails the others' collectives
        # after this long instead of leaving them waiting forever. device_id binds the
        # group to this rank's device (CUDA and Ascend; the CPU's gloo takes none).
        extra = {"device_id": device} if device.type in ("cuda", "npu") else {}
        dist.init_process_group(
            backend_for(device), timeout=timedelta(seconds=rt.collective_timeout_s), **extra
        )
    set_threads(rt.threads)
    apply_math_mode(device, rt.math)
    precision = resolve_precision(device, rt.precision)  # auto -> bf16 where native
    check_precision(device, precision)
    torch.manual_seed(t.seed + d.rank)

    con = RunConsole(RunPaths(run_dir).log, enabled=d.is_main)
    if device.type == "cpu":
        # Step times depend on both; a slow run's log says why (process/ompenv.py).
        con.log_only(f"cpu threads: {torch.get_num_threads()}, OpenMP {ompenv.describe()}")
    ranks = _rank_identities(d)
    if d.is_main:
        extra = {} if ranks is None else {"ranks": ranks}
        update_run_info(
            run_dir,
            device=device.type,
            world_size=d.world_size,
            precision=precision,
            status="running",
            **extra,
        )
        if not resume:  # what this process computes with, beside the launcher's provenance
            record_torch_state(run_dir, torch, device)
        for folder in (run_dir, RunPaths(run_dir).snapshots, RunPaths(run_dir).samples):
            remove_orphan_temps(folder, pid_alive)  # half-written files of a writer that was killed
    if stop is None:
        stop = StopFlag()
        stop.install()
    writer = MetricsWriter(RunPaths(run_dir).metrics) if d.is_main else None
    dev_index = (device.index or 0) if device.type in ("cuda", "npu") else None
    mon = SysMonitor(d.rank, device.type, dev_index, rt.sys_every)
    mon.start()
    tb = None
    status, exit_code, reason = "failed", 1, ""
    progress = Progress()
    try:
        if d.is_main and rt.tensorboard:
            from n2n_core.runs.tensorboard import TBWriter

            tb = TBWriter(RunPaths(run_dir).tensorboard)
        task = make_task(preset, device, d.rank, load_val=d.is_main)
        net = UNet(
            task.channels, residual=preset.network.residual, padding=preset.network.padding
        ).to(device)
        if rt.channels_last:
            net = net.to(memory_format=torch.channels_last)
        kept_bf16 = keep_bf16_weights(device, precision, d.world_size, rt.compile)
        optimizer = make_optimizer(net, t.lr, device, kept_bf16)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

        start = 0
        if resume:
            snap = resume_point(run_dir, preset)
            restore_training_state(snap, net, optimizer, scaler)
            start = snap.step
            if d.is_main:
                # The file is rewritten: the writer must reopen it, not keep the old inode.
                writer.close()
                drop_metrics_after(RunPaths(run_dir).metrics, start)
                writer = MetricsWriter(RunPaths(run_dir).metrics)
        model = net
        if d.world_size > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
        if rt.compile:
            model = _maybe_compile(model, device, con)

        out = None
        if d.is_main:
            # runs.state.SESSION_STARTS recognises these two openings.
            what = f"resumed at step {start}" if resume else "started"
            crop_txt = f", crop {t.crop}" if preset.task == "image" else ""
            con.print(
                f"{preset.name}: {what} on {device.type} x{d.world_size}, {precision}, "
                f"{t.steps} steps, batch {t.batch}x{d.world_size}{crop_txt}, "
                f"noise {task.noise.describe()}, targets {preset.targets}, loss {task.loss_name}"
                + preset.network.describe()
            )
            writer.event(start, f"{what}: {device.type} x{d.world_size} {precision}")
            if preset.task == "image" and t.crop < SMALLEST_SOUND_CROP:
                con.print(f"note: {small_crop_note(t.crop)}", style="yellow")
            out = RunOutput(run_dir, preset, writer, con, tb)

        parts = StepParts(task, model, optimizer, scaler, AUTOCAST_DTYPES[precision], device)
        if kept_bf16:
            parts = bf16_parts(net, parts)
        status = train_loop(parts, net, preset, d, start, stop, out, progress, mon)
        reason = progress.reason
        exit_code = {"finished": 0, "stopped": EXIT_STOPPED}.get(status, 1)
        return status
    except UserError as e:
        reason = str(e)
        quietly(writer and writer.event, 0, f"error: {e}", level="error")
        # Into log.txt only: the command prints it on stderr, once.
        quietly(con.log_only, f"error: {e}")
        exit_code = EXIT_USER
        raise
    except OSError as e:
        if e.errno not in WRITE_FAILURES:
            reason = f"crashed: {e.__class__.__name__}: {e}"
            quietly(writer and writer.event, 0, reason, level="error")
            raise
        # A full disk (or a failing one) under the run folder: the run cannot go on,
        # and the snapshots written so far are whole (atomic writes), so it ends here.
        step = progress.step
        reason = (
            f"{e.filename or run_dir}: cannot write ({e.strerror or e}) at step {step}; "
            "run failed, last good snapshot kept"
        )
        quietly(writer and writer.event, step, reason, level="error")
        quietly(con.print, f"error: {reason}", style="red")
        status, exit_code = "failed", 1
        return status
    except Exception as e:
        reason = f"crashed: {e.__class__.__name__}: {e}"
        quietly(writer and writer.event, 0, reason, level="error")
        raise
    finally:
        mon.close()
        stop.uninstall()
        if d.is_main:
            fields = {"status": status, "ended": time.time(), "exit_code": exit_code}
            if reason:
                fields["reason"] = reason.splitlines()[0][:500] if reason.strip() else reason
            try:
                update_run_info(run_dir, **fields)
            except OSError as e:
                quietly(con.print, f"error: cannot record the run's end in run.json ({e})")
        if writer:
            writer.close()
        if tb:
            tb.close()
        con.close()
        if d.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _rank_identities(d: Dist) -> list[dict] | None:
    """Every rank's process identity (rank 0 records them so a stop can reach each one)."""
    if d.world_size <= 1:
        return None
    out: list = [None] * d.world_size
    dist.all_gather_object(out, own_identity().to_json())
    return out


# errno values that mean "this write cannot be done": the run ends ``failed``, saying why.
WRITE_FAILURES = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG)


def _maybe_compile(model, device: torch.device, con: RunConsole):
    """Compiled for the device (cached on disk); eager, with a note, if compiling fails."""
    from n2n_core.engine.compile import compile_model

    return compile_model(
        model, device, lambda why: con.print(f"torch.compile unavailable ({why}); running eager")
    )


# ---------------------------------------------------------------------------
# starting a run (what `n2n-core run` and `resume` call)
