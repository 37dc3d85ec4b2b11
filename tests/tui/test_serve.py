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


async def _open_sample_in_a_tab(port: int, token: str, timeout: float = 90) -> bytes:
    """As a browser tab: open the only run, press o on its sample strip, and fetch what
    the server then offers at /download/KEY (as the page does)."""
    import json

    import aiohttp

    url = f"http://localhost:{port}/ws?width=120&height=40&token={token}"
    origin = {"Origin": f"http://localhost:{port}"}
    seen, sent, retry_at = "", [], 0.0
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=origin) as ws:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    msg = await ws.receive(timeout=2)
                except asyncio.TimeoutError:
                    msg = None
                if msg is not None and msg.type == aiohttp.WSMsgType.BINARY:
                    seen += msg.data.decode("utf-8", "replace")
                elif msg is not None and msg.type == aiohttp.WSMsgType.TEXT:
                    envelope = json.loads(msg.data)
                    if envelope[0] == "deliver_file_start":
                        key = envelope[1]
                        download = f"http://localhost:{port}/download/{key}?token={token}"
                        async with session.get(download, headers=origin) as r:
                            assert r.status == 200, r.status
                            assert r.headers["Content-Type"].startswith("image/png")
                            assert r.headers["Content-Disposition"].startswith("inline")
                            return await r.read()
                elif msg is not None:
                    break
                # The run list fills after the first frame: enter once the run's row is
                # drawn (its name), and again if no dashboard came (on a busy machine a key
                # can land before the table has the row).
                if "sampled" in seen and "samples" not in seen and time.monotonic() >= retry_at:
                    sent.append("enter")
                    retry_at = time.monotonic() + 10
                    await ws.send_str(json.dumps(["stdin", "\r"]))  # open the only run
                if "samples" in seen and "o" not in sent:
                    sent.append("o")
                    await ws.send_str(json.dumps(["stdin", "o"]))
    raise AssertionError(f"no picture delivered; sent {sent}")


def test_the_browser_view_delivers_a_sample_strip_as_a_real_image(tmp_path):
    pytest.importorskip("textual_serve")
    import shutil

    from tui_helpers import FIXTURES

    results = tmp_path / "results"
    run = results / "00000-sampled"
    shutil.copytree(FIXTURES / "pictures" / "00000-sampled", run)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), N2N_IMAGES="halfblock")
    token_file = tmp_path / "token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "n2n_tui.app", "--serve", str(port), "--results-dir", str(results)]
        + ["--token-file", str(token_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        token = ""
        while not token and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            token = token_file.read_text().strip() if token_file.exists() else ""
        assert token, proc.stderr.read().decode() if proc.poll() is not None else "no token"
        png = asyncio.run(_open_sample_in_a_tab(port, token))
        assert png == (run / "samples" / "step-00003000-astronaut.png").read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
