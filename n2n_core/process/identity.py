"""What proves that a live process is a run's own.

A pid read from ``run.json`` is data from a file: after a crash or a reboot it
may name any process. So the launcher records, at launch, who it is: pid,
process group, start time (field 22 of ``/proc/PID/stat``, clock ticks after
boot), boot id and host (``run.json``'s ``process``); rank 0 records the same
for every rank of a torchrun run (``ranks``). :func:`verify_launcher` and
:func:`verify_rank` are the one check before anything signals a run or judges it
alive:

- pid and pgid > 1, never the caller's own group;
- same host and boot, a live process with the recorded start time and group;
- and proof that the process is *this* run: the launcher holds the run folder's
  lock file open (:mod:`n2n_core.process.locks`), a rank's command line names the run
  folder after ``n2n_core.training.rank``.

Anything else is refused with the reason. Linux reads ``/proc``; elsewhere
``psutil`` answers when installed, and without either nothing is proven.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from n2n_core.process.locks import is_held, lock_path

WORKER_MODULE = "n2n_core.training.rank"
_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    """Who a process is: enough to tell it from any later process with its pid."""

    pid: int
    pgid: int
    start: float  # Linux: clock ticks after boot; elsewhere: psutil's create_time
    boot_id: str
    host: str

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pgid": self.pgid,
            "start": self.start,
            "boot_id": self.boot_id,
            "host": self.host,
        }

    @classmethod
    def parse(cls, data: Any) -> ProcessIdentity | None:
        """The identity a ``run.json`` claims; None unless every field has its type."""
        if not isinstance(data, dict):
            return None
        pid, pgid, start = data.get("pid"), data.get("pgid"), data.get("start")
        boot_id, host = data.get("boot_id"), data.get("host")
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (pid, pgid))
        num = isinstance(start, int | float) and not isinstance(start, bool)
        if not (ints and num and isinstance(boot_id, str) and isinstance(host, str)):
            return None
        return cls(pid=pid, pgid=pgid, start=start, boot_id=boot_id, host=host)


# ---------------------------------------------------------------------------
# reading the live system


def _psutil():
    """psutil where it is installed (the fallback for systems without /proc), else None."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def _have_proc() -> bool:
    return _PROC.joinpath("self/stat").exists()


def boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pass
    ps = _psutil()
    return "" if ps is None else f"boot-{ps.boot_time():.0f}"


def _proc_stat(pid: int) -> tuple[str, int, int, float] | None:
    """(state, ppid, pgid, start) of a live process, None when there is none."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _psutil_stat(pid)
    # The command name (field 2) is in parentheses and may hold spaces or ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def _psutil_stat(pid: int) -> tuple[str, int, int, float] | None:
    ps = _psutil()
    if ps is None:
        return None
    try:
        p = ps.Process(pid)
        zombie = p.status() == ps.STATUS_ZOMBIE
        return ("Z" if zombie else "R", p.ppid(), os.getpgid(pid), p.create_time())
    except (ps.Error, OSError):
        return None


def _stat(pid: int) -> tuple[str, int, int, float] | None:
    return _proc_stat(pid) if _have_proc() else _psutil_stat(pid)


def identity_of(pid: int) -> ProcessIdentity | None:
    """The identity of the live process ``pid`` now; None when it is gone (or a zombie)."""
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return None
    return ProcessIdentity(
        pid=pid, pgid=st[2], start=st[3], boot_id=boot_id(), host=socket.gethostname()
    )


def own_identity() -> ProcessIdentity:
    me = identity_of(os.getpid())
    if me is not None:
        return me
    # No /proc and no psutil: a record that never verifies, so nothing is ever signalled.
    return ProcessIdentity(os.getpid(), os.getpgid(0), -1, "", socket.gethostname())


def catches_signal(pid: int, signum: int) -> bool | None:
    """Whether ``pid`` has a handler for ``signum`` (Linux: ``SigCgt`` in /proc/PID/status);
    None where that cannot be read (no /proc, the process gone)."""
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("SigCgt:"):
            try:
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
            except (IndexError, ValueError):
                return None
    return None


def rank_listens(pid: int, run_dir: str | Path, signum: int) -> bool | None:
    """Whether ``pid`` is a rank of ``run_dir`` that handles ``signum`` by now.

    False while it is not yet that rank: between fork and exec a child still
    carries its parent's handlers (torchrun's agent catches SIGTERM), so the
    command line must name the run before ``SigCgt`` is believed. None where
    neither can be read (no /proc, or the process gone).
    """
    args = _cmdline(pid) if _have_proc() else None
    if args is None:
        return None
    if not _names_run(args, Path(run_dir)):
        return False
    return catches_signal(pid, signum)


def parent_of(pid: int) -> int | None:
    st = _stat(pid)
    return None if st is None else st[1]


def children_of(pid: int) -> list[int]:
    """Live children of ``pid`` (Linux: scan of /proc; elsewhere psutil, or none)."""
    if not _have_proc():
        ps = _psutil()
        try:
            return [] if ps is None else [c.pid for c in ps.Process(pid).children()]
        except ps.Error:
            return []
    out = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        raw = None
    if raw is not None:
        return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0") if a]
    ps = _psutil()
    try:
        return None if ps is None else ps.Process(pid).cmdline()
    except ps.Error:
        return None


def _holds_open(pid: int, target: Path) -> bool | None:
    """Whether ``pid`` has ``target`` open; None when that cannot be read."""
    try:
        want = os.lstat(target)
    except OSError:
        return False
    if _have_proc():
        try:
            fds = list((_PROC / str(pid) / "fd").iterdir())
        except OSError:
            return None
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                return True
        return False
    ps = _psutil()
    if ps is None:
        return None
    try:
        files = ps.Process(pid).open_files()
    except ps.Error:
        return None
    real = os.path.realpath(target)
    return any(os.path.realpath(f.path) == real for f in files)


# ---------------------------------------------------------------------------
# the one check

State = Literal["ours", "gone", "refused"]


@dataclass(frozen=True)
class Verdict:
    """``ours``: alive and proven this run's; ``gone``: the recorded process no longer
    exists; ``refused``: nothing may be signalled (``reason`` says why)."""

    state: State
    reason: str
    ident: ProcessIdentity | None = None

    @property
    def ours(self) -> bool:
        return self.state == "ours"


def _same_process(claim: ProcessIdentity, what: str) -> Verdict:
    """Host, boot, pid/pgid sanity, start time and group of a claim; ``ours`` if all agree."""
    if claim.pid <= 1 or claim.pgid <= 1:
        return Verdict("refused", f"{what}: pid {claim.pid} / group {claim.pgid} is never a run")
    if claim.host != socket.gethostname():
        return Verdict("refused", f"{what}: runs on host {claim.host}")
    if claim.boot_id != boot_id() or not claim.boot_id:
        return Verdict("gone", f"{what}: pid {claim.pid} was recorded before a reboot")
    now = identity_of(claim.pid)
    if now is None:
        return Verdict("gone", f"{what}: pid {claim.pid} is not running")
    if now.start != claim.start:
        return Verdict("gone", f"{what}: pid {claim.pid} now belongs to another process")
    if now.pgid != claim.pgid:
        return Verdict("refused", f"{what}: pid {claim.pid} left its process group {claim.pgid}")
    if now.pgid <= 1 or now.pgid == os.getpgid(0):
        return Verdict("refused", f"{what}: pid {claim.pid} is in this process's own group")
    return Verdict("ours", f"{what}: pid {claim.pid}", now)


def verify_launcher(run_dir: str | Path, claim: Any) -> Verdict:
    """Is the launcher that ``run.json`` names alive, and provably this run's?"""
    ident = ProcessIdentity.parse(claim)
    if ident is None:
        return Verdict("refused", "run.json records no process identity")
    v = _same_process(ident, "launcher")
    if not v.ours:
        return v
    held = _holds_open(ident.pid, lock_path(run_dir))
    if held is None:
        return Verdict("refused", f"launcher: cannot read pid {ident.pid}'s open files")
    if not held:
        return Verdict("refused", f"pid {ident.pid} does not hold {lock_path(run_dir)}")
    return v


def verify_rank(run_dir: str | Path, claim: Any) -> Verdict:
    """Is this recorded rank alive, and provably a rank of this run?"""
    ident = ProcessIdentity.parse(claim)
    if ident is None:
        return Verdict("refused", "malformed rank identity in run.json")
    v = _same_process(ident, "rank")
    if not v.ours:
        return v
    args = _cmdline(ident.pid)
    if args is None:
        return Verdict("refused", f"rank: cannot read pid {ident.pid}'s command line")
    if not _names_run(args, Path(run_dir)):
        return Verdict("refused", f"rank: pid {ident.pid}'s command line does not name {run_dir}")
    return v


def _names_run(args: list[str], run_dir: Path) -> bool:
    if WORKER_MODULE not in args:
        return False
    want = os.path.realpath(run_dir)
    after = args[args.index(WORKER_MODULE) + 1 :]
    return any(os.path.isabs(a) and os.path.realpath(a) == want for a in after)


def run_alive(
    run_dir: str | Path, process: Any, ranks: Any, pid: Any, lock_ours: bool = False
) -> bool:
    """Whether any process of a run that ``run.json`` calls running is still alive here.

    The launcher holds the run folder's lock for its life and the kernel drops it
    when the launcher dies, so the lock answers for the launcher; recorded ranks
    that outlived it (no parent-death signal on this system) still count.
    Folders from before the lock existed fall back to their bare pid.

    ``lock_ours``: the caller holds the folder's lock itself, so the launcher is gone
    unless it still holds a lock file that was removed since.
    """
    held = None if lock_ours else is_held(run_dir)
    if held:
        return True
    # No lock file (a folder from before the lock, or its file removed), or the lock is ours.
    if held is None:
        if ProcessIdentity.parse(process) is None:
            return pid_alive(pid)
        if holds_removed_lock(run_dir, process):
            return True
    return bool(live_ranks(run_dir, ranks))


def holds_removed_lock(run_dir: str | Path, claim: Any) -> bool:
    """Whether the process a claim names still lives and holds this folder's lock file
    open after that file was removed (so its lock no longer shows on the folder).

    Only holds something back -- a resume, an "interrupted" -- never allows a signal.
    """
    ident = ProcessIdentity.parse(claim)
    if ident is None or not _have_proc() or _same_process(ident, "launcher").state == "gone":
        return False
    gone = f"{os.path.realpath(lock_path(run_dir))} (deleted)"
    try:
        fds = list((_PROC / str(ident.pid) / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == gone:
                return True
        except OSError:
            continue
    return False


def pid_alive(pid: Any) -> bool:
    """A bare pid check: only for display of folders that record no identity, never to signal."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def live_ranks(run_dir: str | Path, ranks: Any) -> list[Verdict]:
    """The recorded ranks that are alive and provably this run's."""
    claims = ranks if isinstance(ranks, list) else []
    return [v for v in (verify_rank(run_dir, c) for c in claims) if v.ours]


def launch_identity() -> dict:
    """run.json's fields naming the launcher: ``pid``/``host`` to show, ``process`` to prove it."""
    me = own_identity()
    return {"pid": me.pid, "host": me.host, "process": me.to_json(), "ranks": None, "reason": None}
