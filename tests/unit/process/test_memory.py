"""Freed memory stays with a computing command: the next step's tensors take no new pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from n2n_core.process import memory

PROBE = r"""
import json, os, resource, sys
from n2n_core.process import memory
added = memory.keep_freed_memory() if sys.argv[1] == "on" else {}
import torch

def faults_of_a_step():
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 * 1024 * 1024)  # 64 MiB, as one feature map of a big step
    y = x * 2
    del x, y
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0

for _ in range(8):  # the heap settles in a few steps
    faults_of_a_step()
print(json.dumps({"added": added, "faults": faults_of_a_step(), "env": dict(os.environ)}))
"""


def _probe(mode: str, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_second_step_reuses_the_first_ones_memory():
    off, on = _probe("off"), _probe("on")
    # Without it every 64 MiB tensor is a fresh mmap: ~16,000 page faults each.
    assert off["faults"] > 10_000
    assert on["faults"] < 1_000
    # Children (torchrun ranks, sweep slots) get the same from the environment.
    assert on["added"] == {k: str(v) for k, v in memory.ENV.items()}


def test_what_the_user_set_wins():
    r = _probe("on", MALLOC_MMAP_THRESHOLD_="131072")
    assert r["added"] == {} and r["env"]["MALLOC_MMAP_THRESHOLD_"] == "131072"
