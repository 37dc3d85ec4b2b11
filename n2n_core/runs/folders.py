"""Run folders: numbering, creating one (preset.yaml and run.json), listing and
finding them, and the sample images' names.

The layout is :mod:`n2n_core.runs.layout`; the records are
:mod:`~n2n_core.runs.records`, written by :mod:`~n2n_core.runs.writer`;
``run.json`` has its own model and writer (:mod:`~n2n_core.runs.info`); what a
folder adds up to is :mod:`~n2n_core.runs.summary`. Run ids are five digits,
the next after the largest present.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

from n2n_core.config.schema import Preset, dump_preset
from n2n_core.errors import UserError
from n2n_core.process.identity import launch_identity, own_identity
from n2n_core.process.locks import FolderLock, is_held
from n2n_core.runs.info import RunInfo, effective_status, read_run_info, update_run_info
from n2n_core.runs.layout import SAMPLE_RE, SCHEDULER_LOCK, SWEEPS_DIR, RunPaths
from n2n_core.runs.provenance import save_code_diff

RUN_DIR_RE = re.compile(r"^(\d{5})-(.+)$")
# Validation sample strips (noisy | denoised | clean) in samples/: ``step-00002000-<image>.png``.


def sample_tag(step: int) -> str:
    return f"step-{step:08d}-"


def sample_files(samples_dir: str | Path) -> list[tuple[Path, int, str]]:
    """(path, step, image name) of the sample strips in a folder, by step then name."""
    d = Path(samples_dir)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = SAMPLE_RE.match(p.name)
        if m:
            out.append((p, int(m.group(1)), m.group(2)))
    return sorted(out, key=lambda t: (t[1], t[2]))


# ---------------------------------------------------------------------------
# run folders


def is_run_folder_name(name: object) -> bool:
    """Whether ``name`` is a plain run-folder name (``00042-name``): one path component,
    nothing that climbs out of or past its folder (no separator, no ``..``, no NUL)."""
    if not isinstance(name, str) or RUN_DIR_RE.fullmatch(name) is None:
        return False
    seps = {"/", "\\", "\0", os.sep, os.altsep or "/"}
    return not any(c in name for c in seps)


def run_id_of(path: Path) -> int | None:
    m = RUN_DIR_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def allocate_run_dir(results_dir: str | Path, name: str) -> Path:
    """Create ``results_dir/NNNNN-name`` with the next id after the largest present.

    ``mkdir`` is atomic: two runs started at the same instant cannot get the same
    id, because the loser's ``mkdir`` fails and it takes the next number.
    """
    root = Path(results_dir)
    if root.exists() and not root.is_dir():
        raise UserError(f"{root}: results directory is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{root}: cannot create results directory ({e.strerror})") from None
    for _ in range(1000):
        try:
            ids = [i for i in (run_id_of(p) for p in root.iterdir()) if i is not None]
        except OSError as e:
            raise UserError(f"{root}: cannot read results directory ({e.strerror})") from None
        nxt = max(ids, default=-1) + 1
        path = root / f"{nxt:05d}-{name}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as e:  # read-only, immutable, full, quota
            raise UserError(
                f"{root}: cannot create a run folder in the results directory ({e.strerror})"
            ) from None
        # A different name with the same id may have been created concurrently.
        same = [p for p in root.iterdir() if run_id_of(p) == nxt and p != path]
        if same:
            path.rmdir()
            continue
        return path
    raise UserError(f"{root}: could not allocate a run id")


def list_run_dirs(results_dir: str | Path) -> list[Path]:
    root = Path(results_dir)
    if not root.is_dir():
        return []
    # scandir knows each entry's type without a stat (a symlink is still followed).
    with os.scandir(root) as it:
        found = [
            (int(m.group(1)), e.name) for e in it if (m := RUN_DIR_RE.match(e.name)) and e.is_dir()
        ]
    return [root / name for _, name in sorted(found)]


# ---------------------------------------------------------------------------
# metrics log


# ---------------------------------------------------------------------------
# summaries (what `n2n-core runs` and the TUI's run list show)


def resolve_run_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: run folder not found")
    if not p.is_dir():
        raise UserError(f"{p}: not a run folder (expected a directory)")
    if not (RunPaths(p).metrics).exists() and not (RunPaths(p).run_json).exists():
        raise UserError(f"{p}: not a run folder (no run.json or metrics.jsonl)")
    return p


def prepare_run(
    preset: Preset,
    results_dir: str | Path,
    name: str | None,
    argv: list[str],
    lock: FolderLock | None = None,
    queued: bool = False,
    sweep: str | None = None,
    params: dict | None = None,
    provenance: tuple | None = None,
    rerun_of: str | None = None,
) -> Path:
    """Allocate the run folder and write preset.yaml and run.json.

    The status is ``running`` (this process trains it now), or ``queued`` for a
    run that a scheduler starts later with ``n2n-core resume`` (a sweep's
    points, which also name their ``sweep`` and ``params``). With ``lock``, the
    folder is locked for this process before anything is written in it, so no
    other writer can ever see it running and unlocked. ``provenance``: what
    :func:`n2n_core.runs.provenance.collect` gave for a run that starts now;
    ``rerun_of``: the run folder ``n2n-core rerun`` repeats.
    """

    run_dir = allocate_run_dir(results_dir, name or preset.name)
    if lock is not None:
        lock.acquire(run_dir)
    world = preset.runtime.nproc * preset.runtime.nnodes
    # A queued run has no process yet: `resume` records its launcher when it starts.
    who = {"pid": None, "host": own_identity().host} if queued else launch_identity()
    try:
        (RunPaths(run_dir).preset).write_text(dump_preset(preset), encoding="utf-8")
        more = {"rerun_of": rerun_of} if rerun_of is not None else {}
        if provenance is not None:
            more["provenance"] = save_code_diff(run_dir, provenance)
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
            **more,
        )
    except OSError as e:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)  # ours: created just above, still empty of work
        raise UserError(f"{run_dir}: cannot write the run folder ({e.strerror or e})") from None
    return run_dir


# ---------------------------------------------------------------------------
# sweeps seen from a run folder, and deleting one


def scheduler_alive(sweep_dir: str | Path) -> bool:
    """Whether some process holds the sweep's scheduler lock right now."""
    return is_held(sweep_dir, SCHEDULER_LOCK) is True


def sweep_dir_of(run_dir: str | Path, info: RunInfo | None) -> Path | None:
    """The sweep folder a point's ``run.json`` names (``sweeps/NNNNN-name``, beside the
    run); None when it names none, or names something that is not a sweep folder's
    place (a path that would lead elsewhere is never followed)."""
    ref = info.sweep if info is not None else None
    if not isinstance(ref, str):
        return None
    top, sep, name = ref.partition("/")
    if not sep or top != SWEEPS_DIR or not is_run_folder_name(name):
        return None
    return Path(run_dir).parent / SWEEPS_DIR / name


def delete_run(run_dir: str | Path) -> None:
    """Remove a run folder on a person's request (the TUI's delete), or say why not.

    Only while nothing can write it: the run folder's lock is taken first (its
    launcher holds it for its life, so a run starting or training anywhere on this
    machine refuses the delete, naming its pid), ``run.json`` is read again under it
    (a cached row says what was, not what is), and a point of a sweep whose
    scheduler is alive is refused (the scheduler may start it at any moment). The
    lock is held until the folder is gone. A :class:`UserError` says why not.
    """
    run_dir = Path(run_dir)
    if os.path.islink(run_dir):
        raise UserError(f"{run_dir}: is a symlink; not deleting through it")
    if not is_run_folder_name(run_dir.name) or not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a run folder; not deleted")
    with FolderLock().acquire(run_dir):
        info = read_run_info(run_dir)
        status = effective_status(info, run_dir, lock_ours=True)
        if status == "running" and info is not None:
            here = info.host in (None, socket.gethostname())
            where = "" if here else f" on {info.host}"
            raise UserError(f"{run_dir}: still running{where} (pid {info.pid}); stop it first")
        sweep_dir = sweep_dir_of(run_dir, info)
        if sweep_dir is not None and scheduler_alive(sweep_dir):
            raise UserError(
                f"{run_dir}: a point of sweep {sweep_dir.name}, whose scheduler is running; "
                "cancel the sweep first"
            )
        try:
            shutil.rmtree(run_dir)
        except OSError as e:
            raise UserError(f"{run_dir}: cannot delete ({e.strerror or e})") from None
