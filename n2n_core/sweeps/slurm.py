"""Sweeps on Slurm: each point is one job, submitted through submitit.

submitit (Meta's maintained Slurm submission library) writes the sbatch script,
submits, polls and cancels; nothing here templates sbatch by hand. Each job
runs :class:`PointJob`, which calls ``n2n-core resume RUN_DIR`` on its node(s):
a queued point starts at step 0, an interrupted one continues from its
snapshot. With ``slurm.nodes`` > 1 every node of the job runs torchrun with its
node rank and the job's first host as the rendezvous endpoint; only node 0
writes the run folder (shared file system assumed, as on any Slurm cluster).

``slurm.cluster: local`` runs the same path through submitit's local executor
(jobs are local processes) and ``debug`` runs each job in this process; both
exist to try a sweep's Slurm set-up, and the tests use ``local``.
Job ids and states are recorded per point in ``sweep.json``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from n2n_core.config.schema import Preset, SlurmConfig
from n2n_core.errors import UserError
from n2n_core.files.safe import own_folder
from n2n_core.process.ompenv import undecided
from n2n_core.runs.layout import RunPaths
from n2n_core.sweeps.driver import SweepLog, finish, run_sweep
from n2n_core.sweeps.store import (
    ENDED,
    Point,
    SchedulerLock,
    Sweep,
    is_slurm_job_id,
    point_dir,
    run_status,
    write_sweep,
)

RDZV_PORT = 29400
POLL_S = {"slurm": 15.0, "local": 0.5, "debug": 0.0}
ENDED_STATES = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "FINISHED",
    "INTERRUPTED",
    "DONE",
)


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UserError(
            "--executor slurm needs submitit: pip install 'n2n[slurm]' (or pip install submitit)"
        ) from None
    return submitit


def slurm_config(preset: Preset) -> SlurmConfig:
    return preset.slurm or SlurmConfig()


def check_slurm(presets: list[Preset], devices: list[str] | None) -> None:
    """Everything that can be checked before submitting: submitit, devices, nodes."""
    _submitit()
    if devices is not None:
        raise UserError("--devices: with --executor slurm, Slurm assigns the devices")
    for p in presets:
        cfg = slurm_config(p)
        if cfg.cluster == "slurm" and shutil.which("sbatch") is None:
            raise UserError(
                "slurm.cluster: slurm, but sbatch is not on PATH here (submit from a login "
                "node; slurm.cluster: local tries the same sweep on this machine)"
            )
        if p.runtime.nnodes > 1 and p.runtime.nnodes != cfg.nodes:
            raise UserError(
                f"slurm.nodes: {cfg.nodes} but runtime.nnodes {p.runtime.nnodes}; "
                "set slurm.nodes (each node of the job runs runtime.nproc processes)"
            )
        if cfg.nodes > 1 and cfg.cluster != "slurm":
            raise UserError(f"slurm.nodes: {cfg.nodes} nodes need slurm.cluster: slurm")


def executor_parameters(preset: Preset) -> dict[str, Any]:
    """submitit parameters of one point: one task per node, its GPUs, the slurm: keys."""
    cfg = slurm_config(preset)
    rt = preset.runtime
    gpus = cfg.gpus_per_node
    if gpus is None:
        gpus = rt.nproc if rt.device in ("cuda", "auto") else 0
    params: dict[str, Any] = {
        "timeout_min": cfg.time_min,
        "nodes": cfg.nodes,
        "tasks_per_node": 1,
        "name": f"n2n-{preset.name}",
    }
    if gpus:
        params["gpus_per_node"] = gpus
    if cfg.cpus_per_task:
        params["cpus_per_task"] = cfg.cpus_per_task
    if cfg.mem_gb:
        params["mem_gb"] = cfg.mem_gb
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.account:
        params["slurm_account"] = cfg.account
    extra = dict(cfg.extra)
    if rt.device == "npu" and cfg.gpus_per_node is None:
        # Ascend nodes expose NPUs as a generic resource, not as GPUs.
        extra.setdefault("gres", f"npu:{rt.nproc}")
    if extra:
        params["slurm_additional_parameters"] = extra
    return params


class PointJob:
    """What a Slurm job runs: ``n2n-core resume RUN_DIR`` on each of its nodes.

    Pickled by submitit with the job (by reference to this class, holding only
    the run folder and the node count), so the job needs n2n installed.
    """

    def __init__(self, run_dir: str, nodes: int, then: list[str] | None = None):
        # Absolute: the job starts wherever Slurm puts it, and a path that starts with
        # "/" is never read as an option of `resume`.
        self.run_dir = os.path.abspath(run_dir)
        self.nodes = nodes
        self.then = then  # n2n-core arguments run on node 0 after training (a search's evaluation)

    def command(self, node: int, head: str) -> list[str]:
        cmd = [sys.executable, "-m", "n2n_core.cli", "resume", self.run_dir]
        if self.nodes > 1:
            cmd += [
                "--nnodes",
                str(self.nodes),
                "--node-rank",
                str(node),
                "--rdzv-endpoint",
                f"{head}:{RDZV_PORT}",
            ]
        return cmd

    def __call__(self) -> int:
        node, head = 0, socket.gethostname()
        if self.nodes > 1:
            import submitit

            env = submitit.JobEnvironment()
            node, head = env.node, env.hostnames[0]
        # sbatch exports the submitting shell's environment: how OpenMP threads wait
        # there was decided for the login node's cores, not this node's (process/ompenv.py).
        code = subprocess.call(
            self.command(node, head), stdin=subprocess.DEVNULL, env=undecided(os.environ)
        )
        if code not in (0, 130):
            raise RuntimeError(f"n2n-core resume {self.run_dir} exited with status {code}")
        if code == 0 and self.then and node == 0:
            then = subprocess.call(
                [sys.executable, "-m", "n2n_core.cli", *self.then],
                stdin=subprocess.DEVNULL,
                env=undecided(os.environ),
            )
            if then != 0:
                print(f"n2n-core {self.then[0]} exited with status {then}", file=sys.stderr)
        return code


def _outcome(sweep_dir: Path, p: Point) -> str:
    status = run_status(sweep_dir, p)
    return status if status in ("finished", "failed", "stopped") else "failed"


class SlurmBackend:
    """Each point one submitit job (``slurm.cluster``: a real Slurm, or submitit's local
    and debug executors); at most ``sweep.slots`` jobs at once."""

    executor = "slurm"

    def __init__(self, sweep_dir: Path, sweep: Sweep, log: SweepLog):
        from n2n_core.config.preset import load_preset

        self.submitit = _submitit()
        self.sweep_dir, self.sweep, self.log = sweep_dir, sweep, log
        self.jobs: dict[int, Any] = {}
        self.then = None  # see driver.Backend.then
        self.presets = {
            p.index: load_preset(RunPaths(point_dir(sweep_dir, p)).preset) for p in sweep.points
        }
        if sweep.search is not None:  # points come later; they share the base's slurm: keys
            from n2n_core.config.schema import validate_preset

            base = validate_preset(dict(sweep.base), f"{sweep_dir}/sweep.json base")
        else:
            base = self.presets[0]
        self.cluster = slurm_config(base).cluster
        self.folder = own_folder(sweep_dir / "slurm", "the sweep's job folder", create=True)
        self.poll_s = POLL_S[self.cluster]
        # A search asks for its next trial when a job ends: one at a time unless --slots.
        self.limit = sweep.slots or (1 if sweep.search is not None else len(sweep.points))

    def prepare(self) -> dict[str, Any]:
        for p in self.sweep.points:
            if p.status in ENDED:
                continue
            job = _reattach(self.submitit, self.folder, self.cluster, p)
            if job is not None:
                self.jobs[p.index] = job
                p.status = "running"
                self.log(f"point {p.index}: job {p.job_id} still {p.job_state}; following it")
                continue
            run_state = run_status(self.sweep_dir, p)
            p.status = run_state if run_state in ("finished", "failed") else "pending"
        return {"cluster": self.cluster}

    def announce(self) -> None:
        self.log(f"submitting through submitit ({self.cluster}); job files in {self.folder}")

    def start_pending(self) -> None:
        for p in self.sweep.points:
            if p.status != "pending" or len(self.jobs) >= self.limit:
                continue
            if p.index not in self.presets:  # a search's point, made after we started
                from n2n_core.config.preset import load_preset

                self.presets[p.index] = load_preset(RunPaths(point_dir(self.sweep_dir, p)).preset)
            ex = self.submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
            ex.update_parameters(**executor_parameters(self.presets[p.index]))
            nodes = slurm_config(self.presets[p.index]).nodes
            then = self.then(p) if self.then is not None else None
            job = ex.submit(PointJob(str(point_dir(self.sweep_dir, p)), nodes, then))
            self.jobs[p.index] = job
            p.status, p.job_id, p.job_state = "running", str(job.job_id), "SUBMITTED"
            p.started, p.ended = time.time(), None
            write_sweep(self.sweep_dir, self.sweep)
            self.log(f"point {p.index}: submitted as job {job.job_id} (run {p.run})")
            if self.cluster == "debug":  # a debug job runs when its result is asked for
                _debug_run(job)

    def poll(self) -> None:
        _poll(self.jobs, self.sweep_dir, self.sweep, self.log)

    def stop(self) -> None:
        """Cancel every job, wait for them to end (up to two minutes), then let go."""
        for index, job in list(self.jobs.items()):
            if self.cluster == "slurm":
                scancel(str(job.job_id))
            else:  # submitit's local jobs are processes it holds
                job.cancel(check=False)
            self.log(f"point {index}: job {job.job_id} cancelled")
            self.sweep.points[index].job_state = "CANCELLED"
        _wait_ended(self.jobs, self.sweep_dir, self.sweep, self.log, timeout=120.0)
        self.jobs.clear()  # those still ending were named in the log; their folders say the rest

    def busy(self) -> bool:
        return bool(self.jobs)

    def room(self) -> int:
        return self.limit - len(self.jobs)

    def prune(self, index: int) -> None:
        """Cancel the point's job as :meth:`stop` does (the run stops with a snapshot)."""
        job = self.jobs.get(index)
        if job is None:
            return
        if self.cluster == "slurm":
            scancel(str(job.job_id))
        else:
            job.cancel(check=False)
        self.sweep.points[index].job_state = "CANCELLED"


def run_slurm(sweep_dir: Path, sweep: Sweep, echo: bool) -> int:
    """Submit the sweep's unfinished points and follow their jobs to the end."""
    return run_sweep(sweep_dir, sweep, echo, lambda log: SlurmBackend(sweep_dir, sweep, log))


def _debug_run(job) -> None:
    try:
        job.result()
    except Exception:  # noqa: BLE001 - the run folder says how the point ended
        pass


def scancel(job_id: str) -> None:
    """``scancel -- JOB_ID``: only a Slurm job id (checked again here, whatever checked it
    before), and after ``--``, so nothing read from a file becomes an option."""
    if not is_slurm_job_id(job_id):
        raise UserError(f"job id {job_id!r}: not a Slurm job id; not passed to scancel")
    try:
        subprocess.call(["scancel", "--", job_id], stdin=subprocess.DEVNULL)
    except OSError as e:
        raise UserError(f"scancel {job_id}: cannot run scancel ({e.strerror or e})") from None


def _reattach(submitit, folder: Path, cluster: str, p: Point):
    """A job of this point that Slurm still holds (after the scheduler was restarted)."""
    if cluster != "slurm" or not p.job_id or p.job_state in ENDED_STATES:
        return None
    if not is_slurm_job_id(p.job_id):  # sacct is asked about it: a Slurm id or nothing
        raise UserError(f"point {p.index}: job id {p.job_id!r} is not a Slurm job id")
    job = submitit.SlurmJob(folder=folder / "%j", job_id=p.job_id)
    state = job.state
    if state.split(" ")[0] in ENDED_STATES or state == "UNKNOWN":
        return None
    p.job_state = state
    return job


def _poll(jobs: dict[int, Any], sweep_dir: Path, sweep: Sweep, log) -> None:
    for index, job in list(jobs.items()):
        p = sweep.points[index]
        state = str(job.state)
        changed = state != p.job_state
        p.job_state = state
        if job.done():
            del jobs[index]
            p.status, p.ended = _outcome(sweep_dir, p), time.time()
            changed = True
            log(f"point {index}: job {job.job_id} {state}; run {p.run} {p.status}")
        if changed:
            write_sweep(sweep_dir, sweep)


def _wait_ended(jobs, sweep_dir: Path, sweep: Sweep, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while jobs and time.monotonic() < deadline:
        _poll(jobs, sweep_dir, sweep, log)
        time.sleep(0.5)
    for index in list(jobs):
        log(f"point {index}: job {jobs[index].job_id} still ending; see its run folder")


def cancel_jobs(sweep_dir: Path, sweep: Sweep) -> None:
    """Cancel a Slurm sweep whose scheduler is gone: scancel its live jobs, drop pending points."""
    _submitit()
    lock = SchedulerLock(sweep_dir).acquire()
    log = SweepLog(sweep_dir, echo=True)
    try:
        for p in sweep.points:
            if p.status in ENDED:
                continue
            if p.job_id and p.job_state not in ENDED_STATES:
                if (sweep.scheduler or {}).get("cluster") == "slurm":
                    scancel(p.job_id)
                    log(f"point {p.index}: job {p.job_id} cancelled")
                p.job_state = "CANCELLED"
            run_state = run_status(sweep_dir, p)
            p.status = run_state if run_state in ("finished", "failed") else "cancelled"
        finish(sweep_dir, sweep, "cancelled", log)
    finally:
        log.close()
        lock.release()
