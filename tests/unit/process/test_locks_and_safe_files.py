"""One lock mechanism and one safe open: locks, logs and temp files never go through
a planted symlink or a special file, and a lock dies with its holder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from n2n_core.errors import UserError
from n2n_core.files.atomic import atomic_write_text, open_temp_beside, remove_orphan_temps
from n2n_core.files.safe import open_append
from n2n_core.process.locks import FolderLock, Lock, folder_locked, is_held, lock_path


def test_a_lock_is_exclusive_and_released_on_close(tmp_path):
    a, b = Lock(tmp_path / "x.lock", "test"), Lock(tmp_path / "x.lock", "test")
    assert a.try_acquire()
    assert not b.try_acquire()
    assert b.holder == f" (pid {os.getpid()})"  # who has it, for the message
    a.release()
    assert b.try_acquire()
    b.release()


def test_a_lock_dies_with_its_holder(tmp_path):
    code = (
        "import sys, time\n"
        "from n2n_core.process.locks import FolderLock\n"
        "FolderLock().acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "held"
        assert is_held(tmp_path) is True
        with pytest.raises(
            UserError, match=f"in use by another n2n-core process \\(pid {p.pid}\\)"
        ):
            FolderLock().acquire(tmp_path)
    finally:
        p.kill()
        p.wait()
    assert is_held(tmp_path) is False  # the kernel dropped it: SIGKILL leaves no stale lock
    with FolderLock() as lock:
        lock.acquire(tmp_path)


@pytest.mark.parametrize("planted", ["symlink", "fifo", "folder"])
def test_locks_and_logs_refuse_what_is_not_our_regular_file(tmp_path, planted):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    for name in (".lock", "scheduler.log"):
        p = tmp_path / name
        if planted == "symlink":
            p.symlink_to(victim)
        elif planted == "fifo":
            os.mkfifo(p)
        else:
            p.mkdir()
    with pytest.raises(UserError) as e:
        FolderLock().acquire(tmp_path)
    assert str(lock_path(tmp_path)) in str(e.value)
    assert is_held(tmp_path) is None
    with pytest.raises(UserError, match="scheduler.log"):
        open_append(tmp_path / "scheduler.log", "the scheduler log")
    assert victim.read_text() == "keep me\n"


def test_run_json_edits_refuse_a_symlinked_folder(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with folder_locked(real):
        pass
    with pytest.raises(UserError, match="symlink"):
        with folder_locked(tmp_path / "link"):
            pass


def test_temp_files_are_unpredictable_and_orphans_of_dead_writers_go(tmp_path):
    target = tmp_path / "run.json"
    fd1, t1 = open_temp_beside(target)
    fd2, t2 = open_temp_beside(target)
    os.close(fd1)
    os.close(fd2)
    assert t1 != t2 and t1.name.startswith(f".run.json.tmp-{os.getpid()}-")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan = tmp_path / f".run.json.tmp-{int(dead.stdout)}-0123abcd"
    orphan.write_text("half")
    removed = remove_orphan_temps(tmp_path, lambda pid: pid != int(dead.stdout))
    assert removed == [orphan] and t1.exists() and t2.exists()  # ours (alive) are kept
    atomic_write_text(target, "{}\n")
    assert target.read_text() == "{}\n"


def test_a_run_never_writes_through_a_planted_snapshots_link(make_preset, tmp_path):
    """snapshots/ or samples/ replaced by a link: the run refuses it and writes nothing there."""
    from n2n_core.config.preset import load_preset
    from n2n_core.runs.folders import prepare_run
    from n2n_core.training.loop import train_worker

    preset = load_preset(make_preset(train__steps=2))
    run_dir = prepare_run(preset, tmp_path / "res", "linked", ["test"])
    victim = tmp_path / "victim"
    victim.mkdir()
    (run_dir / "snapshots").symlink_to(victim)
    with pytest.raises(UserError, match="symlink"):
        train_worker(run_dir)
    assert list(victim.iterdir()) == []
