"""The training loop: one function, readable top to bottom.

Every rank runs :func:`train_worker`. Under torchrun (``WORLD_SIZE > 1``) the
network is wrapped in DDP, each rank draws its own crops (the data order is a
pure function of seed, rank and step), and ``train.batch`` is per process. Only
rank 0 writes the run folder: metrics, log, samples, snapshots.

Stopping: SIGINT/SIGTERM set a flag; ranks agree on it at the next log step,
rank 0 writes a snapshot and the run ends ``stopped`` (a second Ctrl-C exits at
once). A non-finite loss ends the run ``failed`` (in fp16 the loss scaler skips
such steps instead) without overwriting the last good snapshot.
"""

from __future__ import annotations

import errno
import math
import os
import signal
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from .atomic import remove_orphan_temps
from .config import Preset, dump_preset
from .console import RunConsole, fmt_duration
from .device import (
    AUTOCAST_DTYPES,
    apply_math_mode,
    backend_for,
    check_precision,
    resolve_device,
    set_threads,
)
from .errors import EXIT_STOPPED, UserError
from .evaluate import torch_runner
from .folderlock import FolderLock
from .network import UNet
from .procident import own_identity
from .runinfo import update_run_info
from .runs import MetricsWriter, drop_metrics_after
from .snapshots import (
    list_snapshots,
    read_snapshot,
    restore_training_state,
    save_snapshot,
    snapshot_name,
)
from .task import make_task

ADAM_BETAS = (0.9, 0.99)
ADAM_EPS = 1e-8


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


class StopFlag:
    """SIGINT/SIGTERM -> graceful stop at the next agreed step; a second SIGINT exits now."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._old: dict[int, object] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread (tests)
                pass

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            os._exit(130)
        self.requested = True
        self.signal_name = signal.Signals(signum).name


def newest_resumable_snapshot(run_dir: Path, preset: Preset | None = None):
    """(snapshot, "") for the newest periodic snapshot that reads back whole with its
    training state (a torn newest one is skipped), else (None, why there is none)."""
    found = list_snapshots(run_dir)
    damaged: list[str] = []
    weights_only = 0
    for _, path in reversed(found):
        try:
            snap = read_snapshot(path, weights_only=False)
        except UserError as e:
            damaged.append(str(e))
            continue
        if "optim_groups" in snap.raw_meta:
            return snap, ""
        weights_only += 1
    if not found:
        every = preset.train.snapshot_every if preset else None
        if every == 0:
            why = "train.snapshot_every is 0 and the run did not stop cleanly"
        elif every:
            why = f"the run ended before its first snapshot (train.snapshot_every: {every})"
        else:
            why = "no snapshots in snapshots/"
        return None, why
    parts = []
    if damaged:
        parts.append(f"{len(damaged)} damaged (newest: {damaged[0]})")
    if weights_only:
        parts.append(f"{weights_only} without training state")
    return None, f"of its {len(found)} snapshot(s), " + " and ".join(parts)


def _set_beta1(optimizer: torch.optim.Optimizer, beta1: float | None) -> None:
    if beta1 is None:
        return
    for g in optimizer.param_groups:
        g["betas"] = (beta1, g["betas"][1])


def train_worker(run_dir: Path, resume: bool = False) -> str:
    """Train the preset saved in ``run_dir``; returns the final status (rank 0's view)."""
    from .config import load_preset

    run_dir = Path(run_dir)
    preset: Preset = load_preset(run_dir / "preset.yaml")
    d = dist_from_env()
    rt, t = preset.runtime, preset.train

    device = resolve_device(rt.device, d.local_rank)
    if d.world_size > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # A peer that died (its node's launcher killed) fails the others' collectives
        # after this long instead of leaving them waiting forever.
        dist.init_process_group(
            backend_for(device), timeout=timedelta(seconds=rt.collective_timeout_s)
        )
    set_threads(rt.threads)
    apply_math_mode(device, rt.math)
    check_precision(device, rt.precision)
    torch.manual_seed(t.seed + d.rank)

    con = RunConsole(run_dir / "log.txt", enabled=d.is_main)
    ranks = _rank_identities(d)
    if d.is_main:
        extra = {} if ranks is None else {"ranks": ranks}
        update_run_info(
            run_dir, device=device.type, world_size=d.world_size, status="running", **extra
        )
        for folder in (run_dir, run_dir / "snapshots", run_dir / "samples"):
            remove_orphan_temps(folder)  # half-written files of a writer that was killed
    stop = StopFlag()
    stop.install()
    writer = MetricsWriter(run_dir / "metrics.jsonl") if d.is_main else None
    tb = None
    status, exit_code, reason = "failed", 1, ""
    run: Training | None = None
    try:
        if d.is_main and rt.tensorboard:
            from .tensorboard import TBWriter

            tb = TBWriter(run_dir / "tensorboard")
        task = make_task(preset, device, d.rank, load_val=d.is_main)
        net = UNet(task.channels).to(device)
        if rt.channels_last:
            net = net.to(memory_format=torch.channels_last)
        # CUDA: one fused kernel for the whole update instead of a launch per tensor op.
        optimizer = torch.optim.Adam(
            net.parameters(), lr=t.lr, betas=ADAM_BETAS, eps=ADAM_EPS, fused=device.type == "cuda"
        )
        scaler = torch.amp.GradScaler(device.type, enabled=rt.precision == "fp16")
        amp_dtype = AUTOCAST_DTYPES[rt.precision]

        start = 0
        if resume:
            snap, why = newest_resumable_snapshot(run_dir, preset)
            if snap is None:
                raise UserError(
                    f"{run_dir}: no complete snapshot to resume from ({why}); start a new run"
                )
            restore_training_state(snap, net, optimizer, scaler)
            start = snap.step
            if d.is_main:
                # The file is rewritten: the writer must reopen it, not keep the old inode.
                writer.close()
                drop_metrics_after(run_dir / "metrics.jsonl", start)
                writer = MetricsWriter(run_dir / "metrics.jsonl")
        model = net
        if d.world_size > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
        if rt.compile:
            model = _maybe_compile(model, device, con)

        if d.is_main:
            # runstate.SESSION_STARTS recognises these two openings.
            what = f"resumed at step {start}" if resume else "started"
            crop_txt = f", crop {t.crop}" if preset.task == "image" else ""
            con.print(
                f"{preset.name}: {what} on {device.type} x{d.world_size}, {rt.precision}, "
                f"{t.steps} steps, batch {t.batch}x{d.world_size}{crop_txt}, "
                f"noise {task.noise.describe()}, targets {preset.targets}, loss {task.loss_name}"
            )
            writer.event(start, f"{what}: {device.type} x{d.world_size} {rt.precision}")

        run = Training(preset, task, model, net, optimizer, scaler, amp_dtype, device, d, run_dir)
        status = _loop(run, start, writer, con, stop, tb)
        reason = run.reason
        exit_code = {"finished": 0, "stopped": EXIT_STOPPED}.get(status, 1)
        return status
    except UserError as e:
        reason = str(e)
        _quietly(writer and writer.event, 0, f"error: {e}", level="error")
        _quietly(con.print, f"error: {e}", style="red")
        exit_code = 2
        raise
    except OSError as e:
        if e.errno not in WRITE_FAILURES:
            reason = f"crashed: {e.__class__.__name__}: {e}"
            _quietly(writer and writer.event, 0, reason, level="error")
            raise
        # A full disk (or a failing one) under the run folder: the run cannot go on,
        # and the snapshots written so far are whole (atomic writes), so it ends here.
        step = run.step if run else 0
        reason = (
            f"{e.filename or run_dir}: cannot write ({e.strerror or e}) at step {step}; "
            "run failed, last good snapshot kept"
        )
        _quietly(writer and writer.event, step, reason, level="error")
        _quietly(con.print, f"error: {reason}", style="red")
        status, exit_code = "failed", 1
        return status
    except Exception as e:
        reason = f"crashed: {e.__class__.__name__}: {e}"
        _quietly(writer and writer.event, 0, reason, level="error")
        raise
    finally:
        stop.uninstall()
        if d.is_main:
            fields = {"status": status, "ended": time.time(), "exit_code": exit_code}
            if reason:
                fields["reason"] = reason.splitlines()[0][:500] if reason.strip() else reason
            try:
                update_run_info(run_dir, **fields)
            except OSError as e:
                _quietly(con.print, f"error: cannot record the run's end in run.json ({e})")
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


def _quietly(fn, *args, **kwargs) -> None:
    """Report a failure on a channel that may itself be failing (the same full disk)."""
    if not fn:
        return
    try:
        fn(*args, **kwargs)
    except OSError:
        pass


def _maybe_compile(model, device: torch.device, con: RunConsole):
    """Compiled for the device (cached on disk); eager, with a note, if compiling fails."""
    from .accel import compile_model

    return compile_model(
        model, device, lambda why: con.print(f"torch.compile unavailable ({why}); running eager")
    )


@dataclass
class Training:
    """What one run trains with: the preset, the task, the network (plain and wrapped), the optimizer."""

    preset: Preset
    task: object
    model: torch.nn.Module  # what the step calls: DDP / compiled wrapper, or net itself
    net: torch.nn.Module  # the plain network: snapshots, validation
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    device: torch.device
    d: Dist
    run_dir: Path
    step: int = 0  # the last step trained (for messages about where a run ended)
    reason: str = ""  # why the run failed, when it did


def _loop(run: Training, start: int, writer, con: RunConsole, stop: StopFlag, tb=None) -> str:
    preset, task, model, net = run.preset, run.task, run.model, run.net
    optimizer, scaler, amp_dtype = run.optimizer, run.scaler, run.amp_dtype
    device, d, run_dir = run.device, run.d, run.run_dir
    t = preset.train
    snap_dir = run_dir / "snapshots"
    samples_dir = run_dir / "samples"
    if d.is_main:
        snap_dir.mkdir(exist_ok=True)
        samples_dir.mkdir(exist_ok=True)

    def meta(step: int, val_psnr: float | None) -> dict:
        return {
            "step": step,
            "preset": preset.to_dict(),
            "task": preset.task,
            "noise": preset.noise.type,
            "targets": preset.targets,
            "in_channels": task.channels,
            "val_psnr": None if val_psnr is None else round(val_psnr, 2),
            "world_size": d.world_size,
        }

    last_psnr: float | None = None

    def run_validation(step: int) -> None:
        nonlocal last_psnr
        if not d.is_main:
            return
        net.eval()
        res = task.validate(
            torch_runner(net, device, preset.runtime.channels_last),
            samples_dir,
            f"step-{step:08d}-",
        )
        net.train()
        if res is None:
            return
        last_psnr = res.psnr
        writer.val(step, res.psnr, res.input_psnr, task.val_dataset, res.images)
        if tb:
            tb.val(step, res.psnr, res.input_psnr)
            tb.sample_images(step, samples_dir)
        con.print(
            f"step {step:>8d}  val PSNR {res.psnr:.2f} dB (noisy input {res.input_psnr:.2f} dB)"
        )

    def write_snapshot(path: Path, step: int, with_state: bool = True) -> bool:
        try:
            save_snapshot(
                path, net, meta(step, last_psnr), optimizer if with_state else None, scaler
            )
            return True
        except OSError as e:
            run.reason = f"{path}: cannot write snapshot ({e.strerror or e}) at step {step}"
            _quietly(
                writer.event,
                step,
                f"snapshot failed at step {step}: {e.strerror or e}",
                level="error",
            )
            _quietly(con.print, f"error: {run.reason}", style="red")
            return False

    net.train()
    con.start_progress(t.steps, start)
    loss_sum = torch.zeros((), device=device)
    n_sum = 0
    t_last = time.perf_counter()
    t_begin = time.time()
    steps_timed = 0
    ms_avg: float | None = None
    step = start
    status = "finished"

    while step < t.steps:
        lr = task.lr(step)
        for g in optimizer.param_groups:
            g["lr"] = lr
        _set_beta1(optimizer, task.adam_beta1(step))

        inp, target = task.make_batch(step)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            pred = task.forward(model, inp)
        loss = task.loss(pred, target, step)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach()
        n_sum += 1
        step += 1
        run.step = step
        steps_timed += 1

        # Validation and snapshot steps are log steps too: the loss is checked for
        # non-finite values (and ranks agree on a stop) before anything is saved.
        boundary = (
            step % t.log_every == 0
            or step == t.steps
            or bool(t.val_every and step % t.val_every == 0)
            or bool(t.snapshot_every and step % t.snapshot_every == 0)
        )
        if boundary:
            stats = torch.stack(
                [loss_sum / max(n_sum, 1), torch.tensor(float(stop.requested), device=device)]
            )
            if d.world_size > 1:
                dist.all_reduce(stats)
                stats[0] /= d.world_size
            mean_loss = float(stats[0])
            stop_now = float(stats[1]) > 0
            now = time.perf_counter()
            ms = (now - t_last) * 1000.0 / max(steps_timed, 1)
            ms_avg = ms if ms_avg is None else 0.9 * ms_avg + 0.1 * ms
            t_last, steps_timed = now, 0
            loss_sum.zero_()
            n_sum = 0

            if d.is_main:
                writer.train(step, mean_loss, lr, ms)
            if not math.isfinite(mean_loss) and amp_dtype is not torch.float16:
                if d.is_main:
                    writer.event(
                        step,
                        f"non-finite loss at step {step}; stopped, last good snapshot kept",
                        level="error",
                    )
                    con.print(
                        f"error: non-finite loss ({mean_loss}) at step {step}; run failed",
                        style="red",
                    )
                run.reason = f"non-finite loss at step {step}; last good snapshot kept"
                return "failed"
            if d.is_main:
                if tb:
                    tb.train(step, mean_loss, lr, ms)
                eta = ms_avg * (t.steps - step) / 1000.0
                psnr_txt = "" if last_psnr is None else f"  PSNR {last_psnr:.2f} dB"
                con.update_progress(
                    step,
                    f"loss {mean_loss:.5f}{psnr_txt}  lr {lr:.2e}  {ms:.1f} ms/step  ETA {fmt_duration(eta)}",
                )
                if step % (t.log_every * 10) == 0 or step == t.steps or step - start == t.log_every:
                    line = (
                        f"step {step:>8d}/{t.steps}  loss {mean_loss:.5f}  lr {lr:.2e}  "
                        f"{ms:7.1f} ms/step  ETA {fmt_duration(eta)}"
                    )
                    if con.live:  # the bar shows it; keep the log file complete
                        con.log_only(line)
                    else:
                        con.print(line)
            if stop_now and step < t.steps:
                if d.is_main:
                    by = stop.signal_name or "signal"
                    if not write_snapshot(snap_dir / snapshot_name(step), step):
                        # Not resumable from here: a "stopped" would promise what is lost.
                        run.reason = f"stopped by {by} at step {step}, but {run.reason}"
                        _quietly(writer.event, step, run.reason, level="error")
                        _quietly(con.print, f"error: {run.reason}", style="red")
                        return "failed"
                    writer.event(
                        step,
                        f"stopped by {by} at step {step}; resume with `n2n-core resume {run_dir}`",
                    )
                    con.print(f"stopped at step {step}; snapshot written")
                return "stopped"

        paused = False
        if t.val_every and step % t.val_every == 0 and step < t.steps:
            run_validation(step)
            paused = True
        if t.snapshot_every and step % t.snapshot_every == 0 and step < t.steps and d.is_main:
            if not write_snapshot(snap_dir / snapshot_name(step), step):
                return "failed"
            paused = True
        if d.world_size > 1 and (t.val_every and step % t.val_every == 0):
            dist.barrier()
        if paused:  # ms/step measures training only, not validation or snapshot I/O
            t_last = time.perf_counter()

    run_validation(step)
    if d.is_main:
        if t.snapshot_every and step % t.snapshot_every == 0:
            if not write_snapshot(snap_dir / snapshot_name(step), step):
                return "failed"
        if not write_snapshot(snap_dir / "final.safetensors", step):
            return "failed"
        took = time.time() - t_begin
        writer.event(step, f"finished in {fmt_duration(took)}")
        con.print(f"finished {step} steps in {fmt_duration(took)}")
    return status


# ---------------------------------------------------------------------------
# starting a run (what `n2n-core run` and `resume` call)


def prepare_run(
    preset: Preset,
    results_dir: str | Path,
    name: str | None,
    argv: list[str],
    lock: FolderLock | None = None,
    queued: bool = False,
    sweep: str | None = None,
    params: dict | None = None,
) -> Path:
    """Allocate the run folder and write preset.yaml and run.json.

    The status is ``running`` (this process trains it now), or ``queued`` for a
    run that a scheduler starts later with ``n2n-core resume`` (a sweep's
    points, which also name their ``sweep`` and ``params``). With ``lock``, the
    folder is locked for this process before anything is written in it, so no
    other writer can ever see it running and unlocked.
    """
    from .runs import allocate_run_dir

    run_dir = allocate_run_dir(results_dir, name or preset.name)
    if lock is not None:
        lock.acquire(run_dir)
    world = preset.runtime.nproc * preset.runtime.nnodes
    # A queued run has no process yet: `resume` records its launcher when it starts.
    who = {"pid": None, "host": own_identity().host} if queued else launch_identity()
    try:
        (run_dir / "preset.yaml").write_text(dump_preset(preset), encoding="utf-8")
        update_run_info(
            run_dir,
            status="queued" if queued else "running",
            name=name or preset.name,
            **who,
            command=argv,
            device=preset.runtime.device,
            world_size=world,
            precision=preset.runtime.precision,
            total_steps=preset.train.steps,
            started=None if queued else time.time(),
            ended=None,
            exit_code=None,
            sweep=sweep,
            params=params,
        )
    except OSError as e:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)  # ours: created just above, still empty of work
        raise UserError(f"{run_dir}: cannot write the run folder ({e.strerror or e})") from None
    return run_dir


def launch_identity() -> dict:
    """run.json's fields naming the launcher: ``pid``/``host`` to show, ``process`` to prove it."""
    me = own_identity()
    return {"pid": me.pid, "host": me.host, "process": me.to_json(), "ranks": None, "reason": None}
