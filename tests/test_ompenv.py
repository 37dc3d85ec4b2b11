"""How OpenMP threads wait: spin briefly on quiet CPUs, sleep on busy ones, the user's setting wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from n2n_core import ompenv
from n2n_core.ompenv import SPIN_COUNT, omp_wait_env


def test_quiet_cpus_spin_briefly_busy_or_unknown_sleep():
    assert omp_wait_env({}, 0.05) == {"GOMP_SPINCOUNT": SPIN_COUNT}
    assert omp_wait_env({}, 0.6) == {"OMP_WAIT_POLICY": "PASSIVE"}
    # Not knowing how busy the machine is never risks the 9x case.
    assert omp_wait_env({}, None) == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_the_users_setting_wins():
    assert omp_wait_env({"OMP_WAIT_POLICY": "ACTIVE"}, 0.0) == {}
    assert omp_wait_env({"GOMP_SPINCOUNT": "0"}, 0.0) == {}
    assert omp_wait_env({"OMP_WAIT_POLICY": "PASSIVE"}, 0.0) == {}


def test_nothing_changes_once_torch_is_loaded(monkeypatch):
    import torch  # noqa: F401  (loaded, as in any process that already computed)

    for k in ompenv.USER_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(ompenv, "cpu_busy", lambda: 0.0)
    assert ompenv.apply() == {}
    assert not any(k in os.environ for k in ompenv.USER_KEYS)


def _child_apply(busy: str, extra_env: dict) -> dict:
    """``apply`` in a fresh process (torch not loaded), the CPUs' use forced to ``busy``."""
    code = (
        "import json, os, sys\n"
        "from n2n_core import ompenv\n"
        f"ompenv.cpu_busy = lambda: {busy}\n"
        "added = ompenv.apply()\n"
        "import torch\n"
        "print(json.dumps([added, {k: os.environ.get(k) for k in ompenv.USER_KEYS},"
        " ompenv.describe()]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ompenv.USER_KEYS}
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
    added, env, said = _child_apply("0.0", {})
    assert added == {"GOMP_SPINCOUNT": SPIN_COUNT} and env["GOMP_SPINCOUNT"] == SPIN_COUNT
    assert said == f"waiters spin (GOMP_SPINCOUNT={SPIN_COUNT})"
    added, env, said = _child_apply("0.9", {})
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None}
    assert said.startswith("waiters sleep")
    added, env, said = _child_apply("None", {"OMP_WAIT_POLICY": "ACTIVE"})
    assert added == {} and env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert said == "OMP_WAIT_POLICY=ACTIVE"
