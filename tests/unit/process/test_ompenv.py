"""How OpenMP threads wait: spin briefly on quiet cores, sleep on busy ones, the user's setting wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from n2n_core.process import ompenv
from n2n_core.process.ompenv import DECIDED_KEY, SPIN_COUNT, omp_wait_env, undecided

SPIN = {"GOMP_SPINCOUNT": SPIN_COUNT, DECIDED_KEY: "1"}
SLEEP = {"OMP_WAIT_POLICY": "PASSIVE", DECIDED_KEY: "1"}


def test_quiet_cores_spin_briefly_busy_or_unknown_sleep():
    assert omp_wait_env({}, 0.05, 2) == SPIN
    assert omp_wait_env({}, 1.0, 2) == SLEEP  # one other busy thread on two cores
    # A large node always runs something; a run beside 16 busy cores of 64 sleeps.
    assert omp_wait_env({}, 2.0, 64) == SPIN
    assert omp_wait_env({}, 16.0, 64) == SLEEP
    # Not knowing never risks the 9x case; libgomp's variable means nothing elsewhere.
    assert omp_wait_env({}, None, 2) == SLEEP
    assert omp_wait_env({}, 0.0, 2, platform="darwin") == SLEEP


def test_the_users_setting_wins():
    assert omp_wait_env({"OMP_WAIT_POLICY": "ACTIVE"}, 0.0, 2) == {}
    assert omp_wait_env({"GOMP_SPINCOUNT": "0"}, 0.0, 2) == {}
    assert omp_wait_env({"OMP_WAIT_POLICY": "PASSIVE"}, 5.0, 2) == {}


def test_a_job_on_another_machine_drops_our_choice_not_the_users():
    ours = {"PATH": "/bin", **SPIN}
    assert undecided(ours) == {"PATH": "/bin"}
    users = {"PATH": "/bin", "OMP_WAIT_POLICY": "ACTIVE"}
    assert undecided(users) == users


def test_the_sample_reads_this_machines_cores():
    busy = ompenv.busy_cores()
    if sys.platform.startswith("linux"):
        assert busy is not None and 0.0 <= busy <= ompenv.cpu_cores() + 1e-6


def test_nothing_changes_once_torch_is_loaded(monkeypatch):
    import torch  # noqa: F401  (loaded, as in any process that already computed)

    for k in ompenv.USER_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(ompenv, "busy_cores", lambda: 0.0)
    assert ompenv.apply() == {}
    assert not any(k in os.environ for k in ompenv.USER_KEYS)


def _child_apply(busy: str, extra_env: dict) -> list:
    """``apply`` in a fresh process (torch not loaded), its cores' use forced to ``busy``."""
    code = (
        "import json, os\n"
        "from n2n_core.process import ompenv\n"
        f"ompenv.busy_cores = lambda: {busy}\n"
        "added = ompenv.apply()\n"
        "import torch\n"
        "print(json.dumps([added, {k: os.environ.get(k) for k in ompenv.USER_KEYS},"
        " ompenv.describe()]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (*ompenv.USER_KEYS, DECIDED_KEY)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **extra_env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(out)


def test_a_fresh_process_decides_before_torch_loads():
    if sys.platform.startswith("linux"):
        added, env, said = _child_apply("0.0", {})
        assert added == SPIN and env["GOMP_SPINCOUNT"] == SPIN_COUNT
        assert said == f"waiters spin (GOMP_SPINCOUNT={SPIN_COUNT})"
    added, env, said = _child_apply("99.0", {})
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None}
    assert said.startswith("waiters sleep")
    added, env, said = _child_apply("None", {"OMP_WAIT_POLICY": "ACTIVE"})
    assert added == {} and env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert said == "OMP_WAIT_POLICY=ACTIVE"


def test_a_slurm_job_decides_on_its_own_node(monkeypatch):
    from n2n_core.sweeps import slurm

    seen = {}

    def call(cmd, stdin=None, env=None):
        seen["env"] = env
        return 0

    monkeypatch.setattr(slurm.subprocess, "call", call)
    for k, v in SPIN.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert slurm.PointJob("/nowhere/run", nodes=1)() == 0
    assert not any(k in seen["env"] for k in (*ompenv.USER_KEYS, DECIDED_KEY))
    assert seen["env"]["PATH"] == os.environ["PATH"]
