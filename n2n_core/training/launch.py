"""Starting a run's processes and following them to the end.

One process trains in this process; more go through torchrun's agent, which
gets a session of its own: a signal to this launcher is forwarded to each rank
as one graceful stop, and the agent and the ranks die with the launcher however
it ends. The launcher holds the run folder's lock for its whole life; on
resume, ranks of the previous launch must be gone before a new one starts.
See docs/ARCHITECTURE.md, "The process model".
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from n2n_core.config.preset import load_preset
from n2n_core.errors import EXIT_STOPPED, EXIT_USER, UserError, printable
from n2n_core.process.identity import (
    children_of,
    holds_removed_lock,
    launch_identity,
    live_ranks,
    rank_listens,
)
from n2n_core.process.lifeline import LAUNCHER_ENV, dies_with, launcher_env
from n2n_core.process.locks import FolderLock
from n2n_core.process.signals import StopFlag
from n2n_core.runs.folders import prepare_run, resolve_run_dir
from n2n_core.runs.info import read_run_info, update_run_info
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.provenance import preset_provenance, record_provenance
from n2n_core.runs.records import TrainRecord, ValRecord, read_metrics


def launch(run_dir: Path, preset, resume: bool, lock, discard_empty: bool = True) -> int:
    """Train ``run_dir`` here (1 process) or through torchrun.

    ``discard_empty``: a fresh run that fails before its first step is removed;
    a sweep's point keeps its folder, which the sweep names.
    """
    rt = preset.runtime
    if rt.nproc * rt.nnodes <= 1:
        from n2n_core.training.loop import train_worker

        try:
            status = train_worker(run_dir, resume=resume)
        except UserError:
            if not resume and discard_empty:
                _discard_if_empty(run_dir)
            raise
        return report_end(run_dir, status)
    code = launch_torchrun(run_dir, preset, resume, lock)
    if code == EXIT_USER and not resume and discard_empty:
        _discard_if_empty(run_dir)
    return code


def _discard_if_empty(run_dir: Path) -> None:
    """A run that failed before its first step leaves nothing worth keeping."""

    recs = read_metrics(RunPaths(run_dir).metrics)
    if not any(isinstance(r, TrainRecord | ValRecord) for r in recs):
        shutil.rmtree(run_dir, ignore_errors=True)


def launch_torchrun(run_dir: Path, preset, resume: bool, lock, records: bool = True) -> int:
    """``records``: False on the nodes > 0 of a run whose nodes share its folder."""

    rt = preset.runtime
    if rt.device != "cpu":  # torch, for counting devices, only where there are some to count
        from n2n_core.engine.device import check_device_count

        check_device_count(rt.device, rt.nproc)
    # torchrun's own agent, made to speak in error: lines (n2n_core.training.agent).
    cmd = [sys.executable, "-m", "n2n_core.training.agent", f"--nproc-per-node={rt.nproc}"]
    if rt.nnodes > 1:
        if not rt.rdzv_endpoint:
            raise UserError("runtime.rdzv_endpoint: needed for nnodes > 1 (HOST:PORT of node 0)")
        # No --node-rank: the c10d rendezvous ignores it (and says so); ranks are
        # handed out as nodes join. node_rank only tells this launcher whether it
        # is the one that records the run (node 0).
        cmd += [
            f"--nnodes={rt.nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rt.rdzv_endpoint}",
            f"--rdzv-id={run_dir.name}",
        ]
    else:
        cmd += ["--standalone"]
    # Absolute: a rank's command line then names this run folder (process.identity.verify_rank).
    cmd += ["-m", "n2n_core.training.rank", str(run_dir.resolve())] + (
        ["--resume"] if resume else []
    )
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // rt.nproc)))
    env[LAUNCHER_ENV] = launcher_env()
    stop = StopForwarder()
    with stop.installed():
        # torchrun gets a session of its own, so a Ctrl-C or a signal to this group
        # reaches only this process, which forwards it to the ranks: torchrun's agent
        # never sees a signal (no traceback) and just waits for them to end. It dies
        # with this process (and the ranks with it), however this process ends.
        agent = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=dies_with(os.getpid()),
            pass_fds=(lock.fd,) if lock.fd is not None else (),
        )
        stop.agent, stop.run_dir = agent, run_dir.resolve()
        while True:
            try:
                code = agent.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                stop.deliver()
    if not records:
        return code if code in (0, EXIT_USER) else 1
    info = read_run_info(run_dir)
    status = (info and info.status) or "failed"
    if status == "running":
        # Rank 0 records how a run ended; when it could not (killed), or on the other
        # nodes of a multi-node run, this launcher is the only one left to say it.
        why = stop.why(code)
        status = "finished" if why is None else "failed"
        update_run_info(run_dir, status=status, exit_code=code, ended=time.time(), reason=why)
    if code == EXIT_USER and status == "failed":
        return EXIT_USER  # bad input: the agent printed what the ranks said (one line each)
    return report_end(run_dir, status)


class StopForwarder:
    """SIGINT/SIGTERM to the launcher -> SIGTERM to every rank (a graceful stop with a
    snapshot, as for one process); a second SIGINT kills torchrun and with it the ranks."""

    DEAF_GRACE_S = 20.0

    def __init__(self) -> None:
        self.agent: subprocess.Popen | None = None
        self.run_dir: Path | None = None
        self.forced = False
        self._told: set[int] = set()
        self._seen: dict[int, float] = {}  # pid -> when first seen unwilling to hear
        self.flag = StopFlag(on_signal=self.deliver, on_second_sigint=self._kill_agent)

    @property
    def requested(self) -> str | None:
        """The name of the signal that asked for the stop, or None."""
        return self.flag.signal_name or None

    def installed(self) -> StopFlag:
        return self.flag

    def _kill_agent(self) -> None:
        if self.agent is not None:
            self.forced = True
            # Our own child, not yet reaped, leading the session we gave it.
            os.killpg(self.agent.pid, signal.SIGKILL)

    def deliver(self) -> None:
        """Tell ranks that have not heard of the stop yet (some may start late).

        A rank is told once it listens: SIGTERM before its stop handler is in (the
        first moments of the interpreter) would kill it and fail the run. Where
        that cannot be read, or a rank is still deaf after ``DEAF_GRACE_S``, it is
        told anyway."""
        if not self.requested or self.forced or self.agent is None:
            return

        now = time.monotonic()
        for pid in children_of(self.agent.pid):
            if pid in self._told:
                continue
            seen = self._seen.setdefault(pid, now)
            listens = rank_listens(pid, self.run_dir, signal.SIGTERM)
            if listens is False and now - seen < self.DEAF_GRACE_S:
                continue
            self._told.add(pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def why(self, code: int) -> str | None:
        """Why no rank recorded the end, or None when torchrun ended normally."""
        if self.forced:
            return (
                "killed by a second SIGINT: ranks ended without a snapshot; "
                "resume continues from the last periodic snapshot"
            )
        if code < 0:
            return f"torchrun was killed by {signal.Signals(-code).name}; its ranks died with it"
        if self.requested:
            return f"stopped by {self.requested} before the ranks could record it (exit {code})"
        if code != 0:
            return f"the ranks ended without recording why (torchrun exit code {code})"
        return None


def report_end(run_dir: Path, status: str) -> int:

    final = RunPaths(run_dir).final_snapshot
    samples = (
        sorted((RunPaths(run_dir).samples).glob("*.png"), key=lambda p: p.stat().st_mtime)
        if (RunPaths(run_dir).samples).is_dir()
        else []
    )
    print(f"run folder:     {run_dir}")
    if final.exists():
        print(f"final snapshot: {final}")
    if samples:
        print(f"denoised sample: {samples[-1]}")
    if status == "stopped":
        print(f"stopped; continue with: n2n-core resume {run_dir}")
        return EXIT_STOPPED
    if status != "finished":
        info = read_run_info(run_dir)
        why = f": {info.reason}" if info is not None and info.reason else ""
        print(f"run {status}{why}; see {RunPaths(run_dir).log}", file=sys.stderr)
        return 1
    return 0


def resume_run(
    run_dir: str | Path,
    nnodes: int | None = None,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> int:
    """``n2n-core resume``: continue a stopped or interrupted run (or start a queued one)."""
    run_dir = resolve_run_dir(run_dir)
    if not (RunPaths(run_dir).preset).exists():
        raise UserError(f"{RunPaths(run_dir).preset}: missing; cannot resume this run")
    preset = load_preset(RunPaths(run_dir).preset)
    if nnodes and nnodes > 1:
        return resume_node(run_dir, preset, nnodes, node_rank, rdzv_endpoint)
    # Refuses while the run's launcher lives; held until this process exits.
    with FolderLock() as lock:
        lock.acquire(run_dir)
        info = read_run_info(run_dir)
        # The final snapshot is written only after the last step: the run is done,
        # whatever a damaged run.json says.
        if (RunPaths(run_dir).final_snapshot).exists():
            raise UserError(f"{run_dir}: run already finished; nothing to resume")
        wait_for_old_processes(run_dir, info)
        # A queued run (a sweep's point, prepared but never started) starts at step 0.
        queued = info is not None and info.status == "queued"
        if not queued:
            from n2n_core.engine.snapshots import resume_point  # torch: only for a real resume

            resume_point(run_dir, preset)  # refused before anything in the folder changes
        changes = {"started": time.time()} if queued else {}
        update_run_info(
            run_dir, status="running", **launch_identity(), ended=None, exit_code=None, **changes
        )
        if queued:  # a sweep's point starts here, maybe on another node: what runs it is here
            record_provenance(run_dir, preset)
        return launch(run_dir, preset, resume=not queued, lock=lock, discard_empty=not queued)


def resume_node(
    run_dir: Path, preset, nnodes: int, node_rank: int, rdzv_endpoint: str | None
) -> int:
    """One node of a multi-node run sharing ``run_dir``: node 0 is the run (it locks and
    records it); the others only train, resuming exactly when a snapshot is there."""
    from n2n_core.engine.snapshots import newest_resumable_snapshot

    if not rdzv_endpoint:
        raise UserError("resume --nnodes: needs --rdzv-endpoint HOST:PORT of node 0")
    if not 0 <= node_rank < nnodes:
        raise UserError(f"--node-rank {node_rank}: must be in 0..{nnodes - 1}")
    runtime = preset.runtime.model_copy(
        update={"nnodes": nnodes, "node_rank": node_rank, "rdzv_endpoint": rdzv_endpoint}
    )
    preset = preset.model_copy(update={"runtime": runtime})
    resume = newest_resumable_snapshot(run_dir)[0] is not None
    with FolderLock() as lock:
        if node_rank == 0:
            lock.acquire(run_dir)
            update_run_info(
                run_dir,
                status="running",
                **launch_identity(),
                world_size=preset.runtime.nproc * nnodes,
                ended=None,
                exit_code=None,
            )
        return launch_torchrun(run_dir, preset, resume, lock, records=node_rank == 0)


def wait_for_old_processes(run_dir: Path, info, wait_s: float = 5.0) -> None:
    """Ranks of the previous launch die with their launcher within seconds; a resume
    never trains beside one of them, nor beside a launcher whose lock file was removed."""

    if info is None:
        return
    deadline = time.monotonic() + wait_s
    while True:
        live = [v.ident.pid for v in live_ranks(run_dir, info.ranks)]
        if info.pid != os.getpid() and holds_removed_lock(run_dir, info.process):
            live.insert(0, info.pid)
        if not live:
            return
        if time.monotonic() >= deadline:
            raise UserError(
                f"{run_dir}: pid {live[0]} of the previous launch is still running; stop it first"
            )
        time.sleep(0.1)


def start_run(
    preset,
    results_dir: str | Path,
    name: str | None,
    command: list[str],
    rerun_of: str | None = None,
    collected: tuple | None = None,
) -> int:
    """``n2n-core run``: a new run folder for ``preset``, locked by this process for its
    whole life (one writer per run folder), then trained. ``rerun_of``: the run folder
    that ``n2n-core rerun`` repeats; ``collected``: its provenance, already collected."""

    with FolderLock() as lock:
        run_dir = prepare_run(
            preset,
            results_dir,
            name,
            command,
            lock=lock,
            provenance=collected or preset_provenance(preset),
            rerun_of=rerun_of,
        )
        return launch(run_dir, preset, resume=False, lock=lock)


def rerun(
    run: str | Path, overrides: list[str], results_dir: str | Path | None, argv: list[str]
) -> int:
    """``n2n-core rerun``: a new run of ``run``'s resolved preset (its seed, its data),
    ``overrides`` on top, in ``results_dir`` (default: beside ``run``). What differs from
    the original's provenance is said, as warnings, before it starts."""
    from n2n_core.config.diff import preset_diff
    from n2n_core.config.loader import read_preset_data
    from n2n_core.config.overrides import apply_overrides
    from n2n_core.config.schema import check_data_paths, validate_preset
    from n2n_core.data.fetch import fetch_hint
    from n2n_core.runs.layout import is_run_folder
    from n2n_core.runs.provenance import compared_now, diff_lines

    src = Path(run)
    if not src.is_dir() or not is_run_folder(src):
        raise UserError(f"{src}: not a run folder (expected a folder with run.json)")
    paths = RunPaths(src)
    if not paths.preset.is_file():
        raise UserError(f"{paths.preset}: missing; cannot rerun this run")
    original = read_preset_data(paths.preset)
    info = read_run_info(src)
    recorded = info.provenance if info is not None else None
    data = _same_data(read_preset_data(paths.preset), recorded, overrides)
    data = apply_overrides(data, overrides)
    preset = validate_preset(data, str(paths.preset))
    check_data_paths(preset, fetch_hint)

    # Paths and values come from files: never terminal control sequences.
    print(f"rerun of {printable(str(src))}")
    for line in diff_lines(preset_diff(original, data)):
        print(f"  changed: {printable(line)}")
    now = preset_provenance(preset)
    if not isinstance(recorded, dict):
        print("warning: the original recorded no provenance; nothing to compare", file=sys.stderr)
    else:
        rows = compared_now(recorded, now[0])
        for line in diff_lines(rows):
            print(f"warning: differs from the original: {printable(line)}", file=sys.stderr)
        if not rows:
            print("  same code, versions, machine, knobs and data as the original")
    sys.stdout.flush()
    where = results_dir if results_dir is not None else src.resolve().parent
    return start_run(preset, where, None, argv, rerun_of=str(src.resolve()), collected=now)


def _same_data(data: dict, recorded, overrides: list[str]) -> dict:
    """The preset with each relative data path the original resolved replaced by the
    absolute one it recorded: a rerun from another working folder reads the same data
    (unless ``--set data.KEY=...`` names other data)."""
    from n2n_core.config.schema import DataSpec

    section = data.get("data")
    prov = recorded.get("data") if isinstance(recorded, dict) else None
    if not isinstance(section, dict) or not isinstance(prov, dict):
        return data
    for key in ("train", "val"):
        spec, ident = section.get(key), prov.get(key)
        if any(o.split("=", 1)[0].strip() == f"data.{key}" for o in overrides):
            continue
        if not isinstance(spec, str) or not isinstance(ident, dict):
            continue
        ds, path = DataSpec.parse(spec), ident.get("path")
        if ds.path is None or ds.path.is_absolute() or not isinstance(path, str):
            continue
        if ds.path.resolve() != Path(path) and Path(path).exists():
            section[key] = path if ds.kind == "path" else f"{ds.kind}:{path}"
    return data
