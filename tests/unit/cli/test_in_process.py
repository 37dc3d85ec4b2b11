"""``n2n_in_process`` stands in for a real ``n2n-core`` process: same Result, nothing leaks."""

from __future__ import annotations

import os
import signal

from cli_helpers import assert_user_error, n2n, n2n_in_process


def test_in_process_gives_what_the_real_process_gives(tmp_path):
    for args in (
        ("frobnicate",),
        ("replay", tmp_path / "nope"),
        ("runs", "--results-dir", tmp_path),
    ):
        assert n2n_in_process(*args) == n2n(*args), args
    assert_user_error(n2n_in_process("frobnicate"), "invalid choice")


def test_in_process_puts_the_process_back(tmp_path, monkeypatch):
    import torch

    monkeypatch.delenv("N2N_DEBUG", raising=False)
    env, cwd, threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    r = n2n_in_process("runs", "--results-dir", tmp_path, env={"N2N_TEST_ONLY": "1"}, cwd=tmp_path)
    assert r.code == 0, r.err
    assert dict(os.environ) == env and os.getcwd() == cwd and torch.get_num_threads() == threads
    assert {s: signal.getsignal(s) for s in handlers} == handlers
