"""``n2n-tui --serve PORT`` serves the manager to a browser."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from tui_helpers import ws_session

from n2n_tui.app import main
from n2n_tui.serve import app_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


async def _session_output(port: int, token: str, timeout: float = 60) -> str:
    """What a browser tab at 100x30 receives until the app has drawn its first screen."""
    url = f"http://localhost:{port}/ws?width=100&height=30&token={token}"
    origin = {"Origin": f"http://localhost:{port}"}  # the server's own page
    out, _ = await ws_session(url, origin, until="Noise2Noise", timeout=timeout)
    return out


def test_served_sessions_start_the_same_manager(tmp_path):
    cmd = app_command(["--results-dir", str(tmp_path / "my results")])
    assert cmd.endswith(f"-m n2n_tui.app --results-dir '{tmp_path / 'my results'}'")


def test_a_bad_port_is_a_user_error(capsys):
    assert main(["--serve", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "error: --serve 70000: a port is 1 to 65535"


def test_serve_answers_a_browser_with_the_app_page(tmp_path):
    pytest.importorskip("textual_serve")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    token_file = tmp_path / "token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "n2n_tui.app", "--serve", str(port), "--results-dir", str(tmp_path)]
        + ["--token-file", str(token_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        page = ""
        token = ""  # the file is created, then written: wait for its line
        while not token and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            token = token_file.read_text().strip() if token_file.exists() else ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                url = f"http://localhost:{port}/?token={token}"
                with urllib.request.urlopen(url, timeout=5) as r:
                    page = r.read().decode("utf-8", "replace")
                break
            except OSError:
                time.sleep(0.3)
        assert proc.poll() is None, proc.stderr.read().decode()
        assert f"ws://localhost:{port}/ws" in page and "xterm" in page
        screen = asyncio.run(_session_output(port, token))
        assert "Noise2Noise experiments" in screen  # the Runs screen's header, drawn for the tab
    finally:
        proc.terminate()
        proc.wait(timeout=10)
