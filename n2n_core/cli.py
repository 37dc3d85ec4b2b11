"""``n2n-core``: the headless command line.

Every user error surfaces here as one ``error: ...`` line on stderr and exit
status 2 (``main``); a traceback only with ``N2N_DEBUG=1``. ``--json`` prints
exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

from . import ompenv
from .config import LEVEL_PARAM, NOISE_TYPES, Device, Executor, MathMode, Precision
from .curves import XAxis
from .errors import EXIT_STOPPED, EXIT_USER, UserError, error_line, printable
from .fetch import CATALOGUE, fetch_hint

DEFAULT_RESULTS = "results"
# Commands whose convolutions run on OpenMP threads: how those threads wait is
# decided before torch loads (ompenv.py); torchrun ranks and sweep slots inherit it.
COMPUTE_COMMANDS = frozenset({"run", "resume", "sweep", "validate", "infer", "bench", "evaluate"})


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as our one-line ``error:`` with exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v < 0 or v != v:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def _replay_speed(text: str) -> float:
    # Below a thousandth a run of minutes replays for days: a typo, not a wish.
    v = _positive_float(text)
    if 0 < v < 1e-3 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or from 0.001 up: {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= v < 2**32:  # what numpy's and torch's generators accept
        raise argparse.ArgumentTypeError(f"must be in 0..{2**32 - 1}: {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    devices = list(get_args(Device))
    # what --noise can name: every noise.type but `none` (own data has no model to score with)
    noises = [n for n in NOISE_TYPES if n != "none"]
    p = _Parser(prog="n2n-core", description="Noise2Noise denoising engine (headless).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("run", help="train a preset into a new run folder")
    r.add_argument("preset")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--nproc", type=int)
    r.add_argument("--nnodes", type=int)
    r.add_argument("--node-rank", type=int)
    r.add_argument("--rdzv-endpoint")
    r.add_argument("--device", choices=devices)
    r.add_argument("--precision", choices=list(get_args(Precision)))
    r.add_argument("--results-dir", default=DEFAULT_RESULTS)
    r.add_argument("--name")

    rs = sub.add_parser("resume", help="continue an interrupted run in its folder")
    rs.add_argument("run_dir")
    # One node of a multi-node run whose nodes share the run folder (a Slurm job's
    # nodes): only node 0 writes it.
    rs.add_argument("--nnodes", type=int, help=argparse.SUPPRESS)
    rs.add_argument("--node-rank", type=int, default=0, help=argparse.SUPPRESS)
    rs.add_argument("--rdzv-endpoint", help=argparse.SUPPRESS)

    v = sub.add_parser("validate", help="PSNR of a snapshot on a folder of clean images")
    v.add_argument("--snapshot", required=True)
    v.add_argument("--dataset-dir", required=True)
    v.add_argument("--noise", choices=noises)
    v.add_argument("--seed", type=_seed, default=0)
    v.add_argument("--device", default="cpu", choices=devices)
    v.add_argument("--samples-dir", help="write noisy | denoised | clean strips here")
    v.add_argument(
        "--math",
        choices=get_args(MathMode),
        default="high_precision",
        help="high_performance allows TF32/HF32 matmuls on CUDA/Ascend (default: full fp32)",
    )
    v.add_argument("--json", action="store_true")

    i = sub.add_parser("infer", help="denoise an image (or a folder of images) with a snapshot")
    i.add_argument("--snapshot", required=True)
    i.add_argument("--image", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--device", default="cpu", choices=devices)
    i.add_argument(
        "--tile", type=int, default=0, help="tile size for large images (0: whole image)"
    )
    i.add_argument("--engine", choices=["auto", "torch", "onnx"], default="auto")

    f = sub.add_parser("freeze", help="export a snapshot to ONNX")
    f.add_argument("--snapshot", required=True)
    f.add_argument("--out", required=True)

    vf = sub.add_parser(
        "validate-frozen",
        help="PSNR of a frozen ONNX model (onnxruntime CPU provider: plain fp32 math, no TF32)",
    )
    vf.add_argument("--model", required=True)
    vf.add_argument("--dataset-dir", required=True)
    vf.add_argument("--noise", choices=noises)
    vf.add_argument("--seed", type=_seed, default=0)
    vf.add_argument("--json", action="store_true")

    inf = sub.add_parser(
        "infer-frozen", help="denoise an image (or folder) with a frozen ONNX model"
    )
    inf.add_argument("--model", required=True)
    inf.add_argument("--image", required=True)
    inf.add_argument("--out", required=True)
    inf.add_argument("--tile", type=int, default=0)

    ds = sub.add_parser("dataset", help="build data sets")
    dsub = ds.add_subparsers(dest="dataset_cmd", metavar="KIND", parser_class=_Parser)
    dsub.required = True
    b = dsub.add_parser("build", help="pack an image folder into one memory-mapped training file")
    b.add_argument("--src", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--channels", type=int, choices=[1, 3], default=3)
    m = dsub.add_parser("mri", help="slice NIfTI volumes into MRI training/validation sets")
    m.add_argument("--src", required=True)
    m.add_argument("--out", required=True)
    fe = dsub.add_parser(
        "fetch", help="download a public data set (pinned SHA-256), extract it and build it"
    )
    fe.add_argument("name", metavar="NAME", choices=list(CATALOGUE), help=", ".join(CATALOGUE))
    fe.add_argument("--out", required=True, help="folder for the downloads and the result")
    fe.add_argument(
        "--sha256",
        metavar="HEX|FILE",
        help="for sets without a published hash: the file's SHA-256, or a SHA256SUMS "
        "file (`sha256sum` format) for a set of many files",
    )
    fe.add_argument("--archive", help="an archive you downloaded (imagenet-val)")

    ru = sub.add_parser("runs", help="list run folders")
    ru.add_argument("--results-dir", default=DEFAULT_RESULTS)
    ru.add_argument("--json", action="store_true")
    ru.add_argument("--tag", action="append", default=[], help="only runs with this tag")
    ru.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only runs whose preset key has this value, e.g. noise.type=poisson",
    )

    rp = sub.add_parser("replay", help="replay a run's metrics log in the terminal")
    rp.add_argument("run_dir")
    rp.add_argument(
        "--speed",
        type=_replay_speed,
        default=0.0,
        help="times real time (0: the final state at once; from 0.001 up)",
    )

    be = sub.add_parser("bench", help="benchmark training, inference and the data pipeline")
    be.add_argument("--json", action="store_true")
    be.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")

    dv = sub.add_parser("devices", help="the devices present here and the CPU cores available")
    dv.add_argument("--json", action="store_true")

    tb = sub.add_parser("export-tb", help="convert a run's metrics.jsonl to TensorBoard events")
    tb.add_argument("run_dir")

    ev = sub.add_parser(
        "evaluate", help="PSNR matrix: snapshots x data sets x noise levels, beside baselines"
    )
    ev.add_argument("target", metavar="SNAPSHOT|RUN_DIR")
    ev.add_argument(
        "--dataset-dir", dest="dataset_dirs", action="append", required=True, metavar="DIR"
    )
    ev.add_argument("--noise", choices=list(LEVEL_PARAM))
    ev.add_argument("--levels", help="noise strengths, e.g. 15,25,50 (sigma on 0..255)")
    ev.add_argument("--all-snapshots", action="store_true", help="every snapshot of the run")
    ev.add_argument(
        "--baselines", default="", help="classical denoisers to score too: noisy,nlm,bm3d"
    )
    ev.add_argument(
        "--max-images", type=_positive_int, help="only the first N images of each folder, by name"
    )
    ev.add_argument("--seed", type=_seed, default=0)
    ev.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "npu", "mps"])
    ev.add_argument("--json", action="store_true")

    df = sub.add_parser("diff", help="the preset keys that differ between two runs")
    df.add_argument("run_a")
    df.add_argument("run_b")
    df.add_argument("--json", action="store_true")

    ex = sub.add_parser(
        "export", help="runs as CSV (every record), a plot of their curves, a Markdown table"
    )
    ex.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ex.add_argument("--csv", metavar="FILE")
    ex.add_argument("--plot", metavar="FILE.png|.svg")
    ex.add_argument("--x", choices=get_args(XAxis), default="step", help="x axis of --plot")
    ex.add_argument(
        "--markdown", action="store_true", help="print the runs' best results as Markdown"
    )

    sw = sub.add_parser(
        "sweep",
        help="run a preset over a grid of values (sweep PRESET) or manage a sweep "
        "(sweep resume|status|cancel SWEEP_DIR)",
    )
    sw.add_argument("target", metavar="PRESET|resume|status|cancel")
    sw.add_argument("sweep_dir", nargs="?", metavar="SWEEP_DIR")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sw.add_argument("--seeds", type=int, default=1)
    sw.add_argument("--name")
    sw.add_argument("--results-dir", default=DEFAULT_RESULTS)
    sw.add_argument("--slots", type=int)
    sw.add_argument("--devices", metavar="LIST", help="accelerator ids to use, e.g. 0,1,2,3")
    sw.add_argument("--executor", choices=get_args(Executor), default="local")
    sw.add_argument("--detach", action="store_true", help="run the scheduler in the background")
    sw.add_argument("--json", action="store_true")

    tg = sub.add_parser("tag", help="add (+TAG) or remove (-TAG) tags of a run")
    tg.add_argument("run_dir")
    tg.add_argument("changes", nargs=argparse.REMAINDER, metavar="+TAG|-TAG")

    nt = sub.add_parser("note", help="set a run's note (an empty TEXT clears it)")
    nt.add_argument("run_dir")
    nt.add_argument("text", nargs="+", metavar="TEXT")
    return p


# ---------------------------------------------------------------------------
# verbs


def cmd_run(a: argparse.Namespace, argv: list[str]) -> int:
    from .config import (
        apply_overrides,
        check_data_paths,
        check_name,
        read_preset_data,
        set_key,
        validate_preset,
    )

    if a.name is not None:
        check_name(a.name, "--name")
    data = read_preset_data(a.preset)
    data = apply_overrides(data, a.overrides)
    # The flags set their keys the way `--set runtime.KEY=...` does (an empty
    # `runtime:` section included).
    for key, val in (
        ("device", a.device),
        ("precision", a.precision),
        ("nproc", a.nproc),
        ("nnodes", a.nnodes),
        ("node_rank", a.node_rank),
        ("rdzv_endpoint", a.rdzv_endpoint),
    ):
        if val is not None:
            set_key(data, ["runtime", key], val, f"--{key.replace('_', '-')}")
    if a.name is not None:
        data["name"] = a.name
    preset = validate_preset(data, a.preset)
    check_data_paths(preset, fetch_hint)
    from .folderlock import FolderLock
    from .train import prepare_run

    # Held until this process exits: one writer per run folder (issue 18.2).
    with FolderLock() as lock:
        run_dir = prepare_run(preset, a.results_dir, a.name, ["n2n-core", *argv], lock=lock)
        return _launch(run_dir, preset, resume=False, lock=lock)


def _launch(run_dir: Path, preset, resume: bool, lock, discard_empty: bool = True) -> int:
    """Train ``run_dir`` here (1 process) or through torchrun.

    ``discard_empty``: a fresh run that fails before its first step is removed;
    a sweep's point keeps its folder, which the sweep names.
    """
    rt = preset.runtime
    if rt.nproc * rt.nnodes <= 1:
        from .train import train_worker

        try:
            status = train_worker(run_dir, resume=resume)
        except UserError:
            if not resume and discard_empty:
                _discard_if_empty(run_dir)
            raise
        return _report(run_dir, status)
    code = _launch_torchrun(run_dir, preset, resume, lock)
    if code == EXIT_USER and not resume and discard_empty:
        _discard_if_empty(run_dir)
    return code


def _discard_if_empty(run_dir: Path) -> None:
    """A run that failed before its first step leaves nothing worth keeping."""
    from .records import TrainRecord, ValRecord, read_metrics

    recs = read_metrics(run_dir / "metrics.jsonl")
    if not any(isinstance(r, TrainRecord | ValRecord) for r in recs):
        shutil.rmtree(run_dir, ignore_errors=True)


def _launch_torchrun(run_dir: Path, preset, resume: bool, lock, records: bool = True) -> int:
    """``records``: False on the nodes > 0 of a run whose nodes share its folder."""
    from .lifeline import LAUNCHER_ENV, dies_with, launcher_env
    from .runinfo import read_run_info, update_run_info

    rt = preset.runtime
    # torchrun's own agent, made to speak in error: lines (n2n_core.agent).
    cmd = [sys.executable, "-m", "n2n_core.agent", f"--nproc-per-node={rt.nproc}"]
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
    # Absolute: a rank's command line then names this run folder (procident.verify_rank).
    cmd += ["-m", "n2n_core.worker", str(run_dir.resolve())] + (["--resume"] if resume else [])
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // rt.nproc)))
    env[LAUNCHER_ENV] = launcher_env()
    stop = _StopForwarder()
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
    return _report(run_dir, status)


class _StopForwarder:
    """SIGINT/SIGTERM to the launcher -> SIGTERM to every rank (a graceful stop with a
    snapshot, as for one process); a second SIGINT kills torchrun and with it the ranks."""

    DEAF_GRACE_S = 20.0

    def __init__(self) -> None:
        self.agent: subprocess.Popen | None = None
        self.run_dir: Path | None = None
        self.requested: str | None = None
        self.forced = False
        self._told: set[int] = set()
        self._seen: dict[int, float] = {}  # pid -> when first seen unwilling to hear
        self._old: dict = {}

    @contextlib.contextmanager
    def installed(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, old in self._old.items():
                signal.signal(sig, old)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT and self.agent is not None:
            self.forced = True
            # Our own child, not yet reaped, leading the session we gave it.
            os.killpg(self.agent.pid, signal.SIGKILL)
            return
        self.requested = self.requested or name
        self.deliver()

    def deliver(self) -> None:
        """Tell ranks that have not heard of the stop yet (some may start late).

        A rank is told once it listens: SIGTERM before its stop handler is in (the
        first moments of the interpreter) would kill it and fail the run. Where
        that cannot be read, or a rank is still deaf after ``DEAF_GRACE_S``, it is
        told anyway."""
        if not self.requested or self.forced or self.agent is None:
            return
        from .procident import children_of, rank_listens

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


def _report(run_dir: Path, status: str) -> int:
    from .runinfo import read_run_info

    final = run_dir / "snapshots" / "final.safetensors"
    samples = (
        sorted((run_dir / "samples").glob("*.png"), key=lambda p: p.stat().st_mtime)
        if (run_dir / "samples").is_dir()
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
        print(f"run {status}{why}; see {run_dir / 'log.txt'}", file=sys.stderr)
        return 1
    return 0


def cmd_resume(a: argparse.Namespace) -> int:
    from .config import load_preset
    from .folderlock import FolderLock
    from .runinfo import read_run_info, update_run_info
    from .runs import resolve_run_dir
    from .train import launch_identity, resume_point

    run_dir = resolve_run_dir(a.run_dir)
    if not (run_dir / "preset.yaml").exists():
        raise UserError(f"{run_dir / 'preset.yaml'}: missing; cannot resume this run")
    preset = load_preset(run_dir / "preset.yaml")
    if a.nnodes and a.nnodes > 1:
        return _resume_node(a, run_dir, preset)
    # Refuses while the run's launcher lives (issue 18.2); held until this process exits.
    with FolderLock() as lock:
        lock.acquire(run_dir)
        info = read_run_info(run_dir)
        # The final snapshot is written only after the last step: the run is done,
        # whatever a damaged run.json says.
        if (run_dir / "snapshots" / "final.safetensors").exists():
            raise UserError(f"{run_dir}: run already finished; nothing to resume")
        _wait_for_old_processes(run_dir, info)
        # A queued run (a sweep's point, prepared but never started) starts at step 0.
        queued = info is not None and info.status == "queued"
        if not queued:
            resume_point(run_dir, preset)  # refused before anything in the folder changes
        changes = {"started": time.time()} if queued else {}
        update_run_info(
            run_dir, status="running", **launch_identity(), ended=None, exit_code=None, **changes
        )
        return _launch(run_dir, preset, resume=not queued, lock=lock, discard_empty=not queued)


def _resume_node(a: argparse.Namespace, run_dir: Path, preset) -> int:
    """One node of a multi-node run sharing ``run_dir``: node 0 is the run (it locks and
    records it); the others only train, resuming exactly when a snapshot is there."""
    from .folderlock import FolderLock
    from .runinfo import update_run_info
    from .train import launch_identity, newest_resumable_snapshot

    if not a.rdzv_endpoint:
        raise UserError("resume --nnodes: needs --rdzv-endpoint HOST:PORT of node 0")
    if not 0 <= a.node_rank < a.nnodes:
        raise UserError(f"--node-rank {a.node_rank}: must be in 0..{a.nnodes - 1}")
    runtime = preset.runtime.model_copy(
        update={"nnodes": a.nnodes, "node_rank": a.node_rank, "rdzv_endpoint": a.rdzv_endpoint}
    )
    preset = preset.model_copy(update={"runtime": runtime})
    resume = newest_resumable_snapshot(run_dir) is not None
    with FolderLock() as lock:
        if a.node_rank == 0:
            lock.acquire(run_dir)
            update_run_info(
                run_dir,
                status="running",
                **launch_identity(),
                world_size=preset.runtime.nproc * a.nnodes,
                ended=None,
                exit_code=None,
            )
        return _launch_torchrun(run_dir, preset, resume, lock, records=a.node_rank == 0)


def _wait_for_old_processes(run_dir: Path, info, wait_s: float = 5.0) -> None:
    """Ranks of the previous launch die with their launcher within seconds; a resume
    never trains beside one of them, nor beside a launcher whose lock file was removed."""
    from .procident import holds_removed_lock, live_ranks

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


def _print_val(res, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(res.to_json()))
    else:
        colour = f"; {res.colour.describe()}" if res.colour else ""
        print(
            f"{printable(what)}: PSNR {res.psnr:.2f} dB on {res.images} image(s) "
            f"({res.noise}, seed {res.seed}); noisy input {res.input_psnr:.2f} dB{colour}"
        )


def cmd_validate(a: argparse.Namespace) -> int:
    from .data.sources import open_val
    from .device import apply_math_mode, resolve_device
    from .evaluate import torch_runner, validate
    from .noise import validation_noise
    from .snapshots import load_network

    device = resolve_device(a.device)
    apply_math_mode(device, a.math)
    net, snap = load_network(a.snapshot, device)
    if snap.meta.get("task") == "mri":
        from .mri.evaluate import validate_mri_snapshot

        res = validate_mri_snapshot(net, snap, a.dataset_dir, seed=a.seed, device=device)
    else:
        noise = validation_noise(a.noise, snap.meta, str(a.snapshot))
        images = open_val(a.dataset_dir, snap.in_channels)
        samples = Path(a.samples_dir) if a.samples_dir else None
        if samples:
            from .filecheck import check_output

            # Strips are named after the images: in the data set they would replace them.
            check_output(samples, "--samples-dir", input_folders=(a.dataset_dir,), folder=True)
            _make_dir(samples, "--samples-dir")
        res = validate(
            torch_runner(net, device), images, noise, a.seed, samples, samples and len(images) or 0
        )
    _print_val(res, a.json, str(a.snapshot))
    return 0


def _make_dir(path: Path, flag: str) -> None:
    """Create an output folder; an existing file or an unwritable parent is a UserError."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: {flag} is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path}: cannot create {flag} ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path}: {flag} is not writable")


def image_jobs(image: str, out: str, model: str | None = None) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file -> a file, a folder -> the same names in the out folder.

    Output names in folder mode: each input keeps its file name, except that a GIF
    (which is not written) becomes NAME.png. When two inputs would get the same
    output name (``a.gif`` and ``a.png``), every one of them keeps its full name and
    gains ``.png`` (``a.gif.png``, ``a.png.png``), so no result replaces another.
    No output may be one of the inputs (the same path, a hard link or a symlink to it),
    the ``model`` (snapshot or ONNX file), a device, FIFO or symlink; a folder --out
    may not lie inside the --image folder.
    """
    from .data.images import list_images
    from .filecheck import check_output, input_ids

    src, dst = Path(image), Path(out)
    if not src.exists():
        raise UserError(f"{src}: image not found")
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise UserError(f"{src}: no images found in folder")
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: --out must be a folder when --image is a folder")
        names = [f.stem + ".png" if f.suffix.lower() == ".gif" else f.name for f in files]
        clashes = {n for n in names if names.count(n) > 1}
        jobs = [
            (f, dst / (f.name + ".png" if n in clashes else n))
            for f, n in zip(files, names, strict=True)
        ]
    else:
        jobs = [(src, dst / src.name if dst.is_dir() else dst)]
    if dst.exists() or not src.is_dir():  # a folder not made yet holds nothing to spoil
        keep = input_ids([f for f, _ in jobs] + ([model] if model else []))
        for _, out_file in jobs:
            check_output(out_file, "a denoised image", inputs=keep)
    if src.is_dir():
        check_output(dst, "--out", input_folders=(src,), folder=True)
        _make_dir(dst, "--out")
    return jobs


def cmd_infer(a: argparse.Namespace) -> int:
    # Checked before torch loads: a wrong --out is an answer in a fraction of a second.
    jobs = image_jobs(a.image, a.out, a.snapshot)
    from .infer import denoise_files, make_runner_for_snapshot

    runner, channels = make_runner_for_snapshot(a.snapshot, a.device, a.engine)
    for src, dst in denoise_files(runner, jobs, channels, tile=a.tile):
        print(f"{src} -> {dst}")
    return 0


def cmd_dataset(a: argparse.Namespace) -> int:
    from .filecheck import check_output

    if a.dataset_cmd == "fetch":
        from .fetch import fetch_dataset

        with _download_bar() as progress:
            fetch_dataset(
                CATALOGUE[a.name],
                a.out,
                a.sha256,
                a.archive,
                progress,
                say=lambda msg: print(msg, flush=True),
            )
        return 0
    if a.dataset_cmd == "build":
        from .data.packed import build_packed

        check_output(a.out, "the packed data set", input_folders=(a.src,))
        info = build_packed(a.src, a.out, a.channels)
        print(f"{info['out']}: {info['images']} images, {info['bytes'] / 1e6:.1f} MB")
        return 0
    from .mri.dataset import build_mri_dataset

    check_output(a.out, "the MRI slices", input_folders=(a.src,), folder=True)
    info = build_mri_dataset(a.src, a.out)
    print(json.dumps(info) if isinstance(info, dict) else info)
    return 0


class _download_bar:
    """A rich progress bar on stderr, one task per file, as a ``fetch`` progress callback."""

    def __enter__(self):
        self.bar = None  # started at the first byte: an early error prints nothing else
        self.tasks: dict[str, int] = {}
        return self

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self.bar = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=total)
        self.bar.update(self.tasks[name], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def cmd_runs(a: argparse.Namespace) -> int:
    from .runfilter import RunQuery
    from .runs import list_runs

    query = RunQuery.from_flags(a.tag, a.where)
    results = Path(a.results_dir)
    # The default folder not made yet is "no runs yet"; a folder the user named that is
    # not there is a typo, said as such (not an empty table that looks like lost runs).
    if a.results_dir != DEFAULT_RESULTS and not results.is_dir():
        what = "is not a folder" if results.exists() else "no such folder"
        raise UserError(f"--results-dir {a.results_dir}: {what}")
    runs = [r for r in list_runs(a.results_dir) if query.matches(r.path, r.info)]
    if a.json:
        print(json.dumps({"results_dir": str(a.results_dir), "runs": [r.to_json() for r in runs]}))
        return 0
    from .report import runs_table

    runs_table(runs, a.results_dir)
    return 0


def cmd_replay(a: argparse.Namespace) -> int:
    from .report import replay

    return replay(a.run_dir, a.speed)


def cmd_bench(a: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(as_json=a.json, quick=a.quick)


def cmd_freeze(a: argparse.Namespace) -> int:
    from .export import freeze
    from .filecheck import check_output

    check_output(a.out, "the ONNX model", inputs=(a.snapshot,))
    out = freeze(a.snapshot, a.out)
    print(f"frozen model: {out}")
    return 0


def cmd_validate_frozen(a: argparse.Namespace) -> int:
    from .export import validate_frozen

    res = validate_frozen(a.model, a.dataset_dir, noise=a.noise, seed=a.seed)
    _print_val(res, a.json, str(a.model))
    return 0


def cmd_infer_frozen(a: argparse.Namespace) -> int:
    from .export import onnx_runner
    from .infer import denoise_files

    jobs = image_jobs(a.image, a.out, a.model)
    runner, channels = onnx_runner(a.model)
    for src, dst in denoise_files(runner, jobs, channels, tile=a.tile):
        print(f"{src} -> {dst}")
    return 0


def cmd_devices(a: argparse.Namespace) -> int:
    from .device import available_devices, cpu_cores

    devices, cores = available_devices(), cpu_cores()
    if a.json:
        print(json.dumps({"devices": devices, "cpu_cores": cores}))
    else:
        print(f"devices: {', '.join(devices)} (auto picks {devices[0]}); CPU cores: {cores}")
    return 0


def cmd_export_tb(a: argparse.Namespace) -> int:
    from .tensorboard import export_run

    out = export_run(a.run_dir)
    print(f"TensorBoard events: {out}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .device import resolve_device
    from .evalmatrix import parse_levels, plan, resolve_snapshots, run_matrix, store
    from .report import matrix_table, progress_on_stderr

    run_dir, snapshots = resolve_snapshots(a.target, a.all_snapshots)
    baselines = [b.strip() for b in a.baselines.split(",") if b.strip()]
    p = plan(snapshots, a.dataset_dirs, a.noise, parse_levels(a.levels), baselines, a.max_images)
    device = resolve_device(a.device)
    with progress_on_stderr(p.total_images(), "evaluate") as tick:
        m = run_matrix(p, device, a.seed, tick)
    if run_dir is not None and not store(m, run_dir):
        print(f"note: {run_dir} is still training; results not stored in it", file=sys.stderr)
    if a.json:
        print(json.dumps(m.to_json()))
    else:
        matrix_table(m)
    return 0


def _run_preset(path: str) -> dict:
    from .config import read_preset_data
    from .runs import resolve_run_dir

    return read_preset_data(resolve_run_dir(path) / "preset.yaml")


def cmd_diff(a: argparse.Namespace) -> int:
    from .config import ABSENT, preset_diff, show_value

    rows = preset_diff(_run_preset(a.run_a), _run_preset(a.run_b))
    if a.json:
        print(
            json.dumps(
                {
                    "a": a.run_a,
                    "b": a.run_b,
                    "differ": [
                        {
                            "key": k,
                            "a": None if va is ABSENT else va,
                            "b": None if vb is ABSENT else vb,
                        }
                        for k, va, vb in rows
                    ],
                }
            )
        )
        return 0
    if not rows:
        print("no preset keys differ")
    for key, va, vb in rows:
        print(f"{key}: {show_value(va)} -> {show_value(vb)}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .filecheck import check_output
    from .runexport import markdown, summaries, write_csv, write_plot

    dirs, runs = summaries(a.run_dirs)
    for path, what in ((a.csv, "the CSV file"), (a.plot, "the plot")):
        if path:  # refused before writing anything; never into a run it reads
            check_output(path, what, input_folders=tuple(dirs))
    if a.csv:
        print(f"CSV: {write_csv(dirs, a.csv)}", file=sys.stderr if a.markdown else sys.stdout)
    if a.plot:
        print(
            f"plot: {write_plot(dirs, a.plot, a.x)}", file=sys.stderr if a.markdown else sys.stdout
        )
    if a.markdown or not (a.csv or a.plot):
        sys.stdout.write(markdown(runs))
    return 0


def cmd_sweep(a: argparse.Namespace, argv: list[str]) -> int:
    from . import sweepcli

    if a.target in ("resume", "status", "cancel"):
        if not a.sweep_dir:
            raise UserError(f"sweep {a.target}: SWEEP_DIR is missing")
        return {
            "resume": sweepcli.resume,
            "status": sweepcli.status,
            "cancel": sweepcli.cancel,
        }[a.target](a)
    if a.sweep_dir:
        raise UserError(
            f"sweep {a.target} {a.sweep_dir}: one preset; the actions are resume, status, cancel"
        )
    return sweepcli.start(a, ["n2n-core", *argv])


def cmd_tag(a: argparse.Namespace) -> int:
    from .runinfo import retag_run
    from .runs import resolve_run_dir

    tags = retag_run(resolve_run_dir(a.run_dir), a.changes)
    print(f"{a.run_dir}: tags {' '.join(tags) if tags else '(none)'}")
    return 0


def cmd_note(a: argparse.Namespace) -> int:
    from .runinfo import set_run_note
    from .runs import resolve_run_dir

    note = set_run_note(resolve_run_dir(a.run_dir), " ".join(a.text))
    print(f"{a.run_dir}: note {'cleared' if not note else 'set'}")
    return 0


def dispatch(a: argparse.Namespace, argv: list[str]) -> int:
    table = {
        "run": lambda: cmd_run(a, argv),
        "resume": lambda: cmd_resume(a),
        "validate": lambda: cmd_validate(a),
        "infer": lambda: cmd_infer(a),
        "freeze": lambda: cmd_freeze(a),
        "validate-frozen": lambda: cmd_validate_frozen(a),
        "infer-frozen": lambda: cmd_infer_frozen(a),
        "dataset": lambda: cmd_dataset(a),
        "runs": lambda: cmd_runs(a),
        "replay": lambda: cmd_replay(a),
        "bench": lambda: cmd_bench(a),
        "export-tb": lambda: cmd_export_tb(a),
        "evaluate": lambda: cmd_evaluate(a),
        "diff": lambda: cmd_diff(a),
        "export": lambda: cmd_export(a),
        "sweep": lambda: cmd_sweep(a, argv),
        "tag": lambda: cmd_tag(a),
        "note": lambda: cmd_note(a),
        "devices": lambda: cmd_devices(a),
    }
    return table[a.cmd]()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("N2N_DEBUG") == "1"
    try:
        a = build_parser().parse_args(argv)
        if a.cmd in COMPUTE_COMMANDS and not (
            a.cmd == "sweep" and a.target in ("status", "cancel")
        ):
            ompenv.apply()
        code = dispatch(a, argv)
    except UserError as e:
        if debug:
            raise
        for problem in e.problems:
            print(error_line(problem), file=sys.stderr)
        code = EXIT_USER
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = EXIT_STOPPED
    except BrokenPipeError:
        code = 0
    except MemoryError:
        if debug:
            raise
        print("error: out of memory", file=sys.stderr)
        code = 1
    except Exception as e:  # a bug, not the user's fault: still no traceback unless asked
        if debug:
            raise
        print(
            f"error: internal error: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            "(set N2N_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
