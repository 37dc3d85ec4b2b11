"""A stop signals nothing that is not provably the run; one writer per run folder.

Every process here is the test's own (never pid 1), started in a session of its
own so that a wrong signal could only hit it -- and the test sees it survive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from cli_helpers import n2n

from n2n_core.errors import UserError
from n2n_core.process.identity import identity_of, own_identity, verify_launcher, verify_rank
from n2n_core.process.locks import FolderLock, is_held, lock_path
from n2n_core.runs import stop as runstop
from n2n_core.runs.info import effective_status, read_run_info

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")

HOLDER = textwrap.dedent(
    """
    import signal, sys, time
    from n2n_core.process.locks import FolderLock
    if sys.argv[2] == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    FolderLock().acquire(sys.argv[1])
    print("locked", flush=True)
    time.sleep(120)
    """
)


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        args, start_new_session=True, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
    )


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []

    def start(args: list[str]) -> subprocess.Popen:
        p = _spawn(args)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def _sleeper(procs) -> subprocess.Popen:
    return procs([sys.executable, "-c", "import time; time.sleep(120)"])


def _holder(procs, run_dir, mode="plain") -> subprocess.Popen:
    p = procs([sys.executable, "-c", HOLDER, str(run_dir), mode])
    assert p.stdout.readline() == b"locked\n"
    return p


def write_run_json(run_dir, data: dict) -> None:
    (run_dir / "run.json").write_text(json.dumps(data))


def _run_json(run_dir, pid: int, **extra) -> None:
    ident = identity_of(pid)
    data = {"status": "running", "pid": pid, "host": ident.host, "process": ident.to_json()}
    write_run_json(run_dir, {**data, **extra})


def _alive(p: subprocess.Popen) -> bool:
    return p.poll() is None


@pytest.fixture
def no_signals(monkeypatch):
    """Records every signal the engine tries to send, and sends none."""
    sent: list[tuple[str, int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(("kill", pid, sig)))
    monkeypatch.setattr(os, "killpg", lambda pg, sig: sent.append(("killpg", pg, sig)))
    return sent


def test_unrelated_process_with_the_recorded_pid_survives_a_stop(procs, tmp_path):
    victim = _sleeper(procs)
    # Its real pid, group, start time, boot and host: all that a stale or forged
    # run.json could copy. It does not hold this run folder's lock, so it is not the run.
    _run_json(tmp_path, victim.pid)
    with FolderLock().acquire(tmp_path):  # a run folder's lock file, as its run left it
        pass
    res = runstop.stop_run(tmp_path, grace=0.5, poll=0.05)
    assert res.outcome == "refused" and "does not hold" in res.reason
    with pytest.raises(UserError, match="not signalled"):
        runstop.signal_run(tmp_path, signal.SIGTERM)
    time.sleep(0.2)
    assert _alive(victim)
    assert effective_status(read_run_info(tmp_path), tmp_path) == "interrupted"


def test_bare_pid_of_an_unrelated_process_is_never_signalled(procs, tmp_path):
    victim = _sleeper(procs)
    write_run_json(tmp_path, {"status": "running", "pid": victim.pid, "host": "x"})
    assert runstop.stop_run(tmp_path, grace=0.2).outcome == "refused"
    time.sleep(0.2)
    assert _alive(victim)


@pytest.mark.parametrize(
    "claim",
    [
        {"pid": 1, "pgid": 1},
        {"pid": 1, "pgid": 555},
        {"pid": 555, "pgid": 1},
        {"pid": 0, "pgid": 0},
        {"pid": -1, "pgid": -1},
        {"pid": True, "pgid": True},
        {"pid": "1", "pgid": "1"},
    ],
)
def test_pid_or_group_one_and_bad_types_are_never_signalled(tmp_path, no_signals, claim):
    me = own_identity()
    ident = {"start": me.start, "boot_id": me.boot_id, "host": me.host, **claim}
    write_run_json(
        tmp_path, {"status": "running", "pid": claim["pid"], "host": me.host, "process": ident}
    )
    assert runstop.stop_run(tmp_path, grace=0.1).outcome == "refused"
    assert not verify_launcher(tmp_path, ident).ours
    assert no_signals == []


def test_own_group_is_never_signalled(tmp_path, no_signals):
    _run_json(tmp_path, os.getpid())
    with FolderLock().acquire(tmp_path):  # even holding the lock: the caller's own group
        res = runstop.stop_run(tmp_path, grace=0.1)
    assert res.outcome == "refused" and "own group" in res.reason
    assert no_signals == []


def test_pid_reused_after_the_run_died_is_not_running(procs, tmp_path):
    victim = _sleeper(procs)
    ident = identity_of(victim.pid).to_json()
    ident["start"] -= 1  # the recorded process started at another time: not this one
    write_run_json(tmp_path, {"status": "running", "pid": victim.pid, "process": ident})
    res = runstop.stop_run(tmp_path, grace=0.1)
    assert res.outcome == "not running" and "another process" in res.reason
    assert _alive(victim)


def test_recorded_before_a_reboot_is_not_running(procs, tmp_path, no_signals):
    victim = _sleeper(procs)
    ident = identity_of(victim.pid).to_json()
    ident["boot_id"] = "00000000-0000-0000-0000-000000000000"
    write_run_json(tmp_path, {"status": "running", "pid": victim.pid, "process": ident})
    assert runstop.stop_run(tmp_path, grace=0.1).outcome == "not running"
    assert no_signals == []


def test_the_run_itself_is_stopped_and_its_status_follows(procs, tmp_path):
    holder = _holder(procs, tmp_path)
    _run_json(tmp_path, holder.pid)
    assert verify_launcher(tmp_path, read_run_info(tmp_path).process).ours
    assert effective_status(read_run_info(tmp_path), tmp_path) == "running"
    res = runstop.stop_run(tmp_path, grace=10, poll=0.05)
    assert res.outcome == "stopped"
    assert holder.wait(5) == -signal.SIGTERM
    assert effective_status(read_run_info(tmp_path), tmp_path) == "interrupted"


def test_stop_escalates_to_sigkill_after_the_grace_period(procs, tmp_path):
    holder = _holder(procs, tmp_path, "ignore-term")
    _run_json(tmp_path, holder.pid)
    res = runstop.stop_run(tmp_path, grace=0.3, poll=0.05)
    assert res.outcome == "killed"
    assert holder.wait(5) == -signal.SIGKILL


def _rank_like(procs, run_dir) -> subprocess.Popen:
    """A process whose command line names the run folder as a rank's does."""
    code = "import time; time.sleep(120)"
    return procs(
        [sys.executable, "-c", code, "-m", "n2n_core.training.rank", str(run_dir.resolve())]
    )


def test_orphan_rank_keeps_the_run_alive_and_is_stopped_directly(procs, tmp_path):
    rank = _rank_like(procs, tmp_path)
    stranger = _rank_like(procs, tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    gone = identity_of(os.getpid()).to_json() | {"pid": 999_999_999}
    ranks = [identity_of(p.pid).to_json() for p in (rank, stranger)]
    _run_json(tmp_path, os.getpid(), process=gone, ranks=ranks)
    time.sleep(0.3)  # the children have exec'd: their command lines are final
    assert verify_rank(tmp_path, ranks[0]).ours
    assert not verify_rank(tmp_path, ranks[1]).ours  # names another folder
    assert effective_status(read_run_info(tmp_path), tmp_path) == "running"
    assert runstop.stop_run(tmp_path, grace=10, poll=0.05).outcome == "stopped"
    assert rank.wait(5) == -signal.SIGTERM
    assert _alive(stranger)


def test_second_lock_is_refused_and_a_killed_holder_frees_it(procs, tmp_path):
    holder = _holder(procs, tmp_path)
    assert is_held(tmp_path) is True
    with pytest.raises(UserError, match=f"pid {holder.pid}"):
        FolderLock().acquire(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_path(tmp_path).exists()  # the file stays; the lock died with its process
    assert is_held(tmp_path) is False
    with FolderLock().acquire(tmp_path):
        assert is_held(tmp_path) is True
    assert is_held(tmp_path) is False


def test_lock_file_that_is_a_symlink_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "run").mkdir()
    lock_path(tmp_path / "run").symlink_to(target)
    with pytest.raises(UserError, match=r"\.lock"):
        FolderLock().acquire(tmp_path / "run")
    assert target.read_text() == "keep"


def test_resume_of_a_run_in_use_is_refused_with_one_error_line(make_preset, tmp_path):
    p = make_preset(train__steps=2, train__val_every=0, train__snapshot_every=1)
    r = n2n("run", p, "--results-dir", tmp_path / "res")
    assert r.code == 0, r.err
    run_dir = tmp_path / "res" / "00000-tiny"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["process"]["pid"] == info["pid"] and info["process"]["pgid"] > 1
    assert info["status"] == "finished"
    (run_dir / "snapshots" / "final.safetensors").unlink()
    before = (run_dir / "metrics.jsonl").read_bytes()
    with FolderLock().acquire(run_dir):
        r = n2n("resume", run_dir)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "in use" in lines[0], r.err
    assert "Traceback" not in r.err
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def test_a_live_launcher_whose_lock_file_was_removed_still_blocks_a_resume(procs, tmp_path):
    from n2n_core.training.launch import wait_for_old_processes

    holder = _holder(procs, tmp_path)
    _run_json(tmp_path, holder.pid)
    lock_path(tmp_path).unlink()  # the holder keeps the lock on the unlinked file
    info = read_run_info(tmp_path)
    assert effective_status(info, tmp_path) == "running"
    with pytest.raises(UserError, match=f"pid {holder.pid} of the previous launch"):
        wait_for_old_processes(tmp_path, info, wait_s=0.2)
    # Not proven to be the run (its lock is not this folder's): never signalled.
    assert runstop.stop_run(tmp_path, grace=0.1).outcome == "refused"
    assert _alive(holder)
    holder.kill()
    holder.wait()
    assert effective_status(info, tmp_path) == "interrupted"
    wait_for_old_processes(tmp_path, info, wait_s=0.2)


def _metrics(run_dir, ms_per_step: float) -> None:
    rec = {"kind": "train", "step": 10, "time": 1.0, "loss": 0.1, "lr": 1e-4}
    (run_dir / "metrics.jsonl").write_text(json.dumps({**rec, "ms_per_step": ms_per_step}) + "\n")


def test_the_grace_before_sigkill_allows_for_slow_steps(tmp_path):
    # A paper-size crop in fp32 on a CPU: 2 s a step. A fixed 20 s grace would kill
    # a run of 8 ranks that agrees on a stop only at its next log step (100 steps on).
    assert runstop.stop_grace(tmp_path) == runstop.STOP_GRACE_S  # nothing measured yet
    _metrics(tmp_path, 2000.0)
    write_run_json(tmp_path, {"world_size": 1})
    one = runstop.stop_grace(tmp_path)
    assert runstop.STOP_GRACE_S + 2 * 2.0 <= one <= 60  # one process: the step under way
    write_run_json(tmp_path, {"world_size": 8})
    (tmp_path / "preset.yaml").write_text("train:\n  log_every: 100\n")
    ranks = runstop.stop_grace(tmp_path)
    assert ranks >= runstop.STOP_GRACE_S + 100 * 2.0
    (tmp_path / "preset.yaml").write_text("train:\n  log_every: 10\n")
    assert runstop.STOP_GRACE_S + 10 * 2.0 <= runstop.stop_grace(tmp_path) < ranks
    # however slow, never unbounded; damaged files fall back, never raise
    _metrics(tmp_path, 1e9)
    assert runstop.stop_grace(tmp_path) == runstop.STOP_GRACE_MAX_S
    _metrics(tmp_path, 2000.0)
    for bad in ("train: 5\n", "train:\n  log_every: true\n", "[unclosed\n"):
        (tmp_path / "preset.yaml").write_text(bad)
        assert runstop.STOP_GRACE_S + 100 * 2.0 <= runstop.stop_grace(tmp_path) <= 900
    (tmp_path / "metrics.jsonl").write_text("garbage\n")
    assert runstop.stop_grace(tmp_path) == runstop.STOP_GRACE_S
