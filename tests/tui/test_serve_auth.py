"""``n2n-tui --serve``: only whoever holds the token printed at start gets a session.

The real server runs in a subprocess on a free port and is asked with plain HTTP
requests, aiohttp websockets and, where Chromium is installed, a headless
browser driven over the DevTools protocol.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tui_helpers import FIXTURES, ws_session

from n2n_core.errors import UserError
from n2n_tui.app import main
from n2n_tui.serve import remove_token_file, token_matches, write_token_file

pytest.importorskip("textual_serve")
aiohttp = pytest.importorskip("aiohttp")

URL_LINE = re.compile(r"http://localhost:(\d+)/\?token=([A-Za-z0-9_-]+)")
# Wide enough that the server's log lines (refusals) are not wrapped.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), COLUMNS="400")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``n2n-tui --serve PORT`` in a subprocess, its stdout read as it comes."""

    def __init__(self, tmp: Path, *extra: str) -> None:
        self.port = _free_port()
        self.token_file = tmp / "token"
        self.results = tmp / "results"
        shutil.copytree(FIXTURES / "runs", self.results)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "n2n_tui.app", "--serve", str(self.port)]
            + ["--results-dir", str(self.results), "--token-file", str(self.token_file), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not self.url_match() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.1)
        assert self.url_match(), "".join(self.lines)
        self.token = self.url_match().group(2)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def url_match(self) -> re.Match | None:
        return next(filter(None, map(URL_LINE.search, self.lines)), None)

    def url(self, path: str = "/", host: str = "localhost") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = Served(tmp_path_factory.mktemp("served"))
    yield s
    s.stop()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """(status, headers, body) of a GET, a 403 included."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8", "replace")


def _ws_url(s: Served, token: str | None, host: str = "localhost") -> str:
    query = "width=100&height=30" + (f"&token={token}" if token is not None else "")
    return f"ws://{host}:{s.port}/ws?{query}"


# -- the token ------------------------------------------------------------------------


def test_each_start_prints_a_new_token_url_and_writes_the_token_file(served, tmp_path):
    assert len(base64.urlsafe_b64decode(served.token + "=")) >= 16  # at least 128 bits
    st = served.token_file.lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert served.token_file.read_text().strip() == served.token
    other = Served(tmp_path)  # a second start: its own token
    try:
        assert other.token != served.token
    finally:
        other.stop()
    assert not other.token_file.exists()  # removed when the server stops


def test_no_token_is_refused(served):
    for path in ("/", "/static/js/textual.js", "/static/css/xterm.css", "/download/x", "/nope"):
        status, _, body = _get(served.url(path))
        assert status == 403, path
        assert "token" in body
    assert asyncio.run(ws_session(_ws_url(served, None), {"Origin": served.origin})) == 403


def test_a_wrong_token_is_refused(served):
    near = served.token[:-1] + ("A" if served.token[-1] != "A" else "B")
    for wrong in ("wrong", near, "", served.token + "x", "é" * 8):
        status, headers, _ = _get(served.url(f"/?token={urllib.parse.quote(wrong)}"))
        assert status == 403, wrong
        assert "Set-Cookie" not in headers
    cookie = {"Cookie": f"n2n-serve-{served.port}={near}"}
    assert _get(served.url("/static/js/textual.js"), cookie)[0] == 403
    assert asyncio.run(ws_session(_ws_url(served, near), {"Origin": served.origin})) == 403
    assert not token_matches(None, served.token) and not token_matches("é", served.token)


def test_the_right_token_gets_the_page_and_a_cookie_for_what_it_loads(served):
    status, headers, page = _get(served.url(f"/?token={served.token}"))
    assert status == 200
    assert f"ws://localhost:{served.port}/ws" in page and "xterm" in page
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"n2n-serve-{served.port}={served.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert headers["Referrer-Policy"] == "no-referrer"  # the URL holds the token
    # The page's own follow-ups carry the cookie, not the token.
    jar = {"Cookie": f"n2n-serve-{served.port}={served.token}"}
    status, _, script = _get(served.url("/static/js/textual.js"), jar)
    assert status == 200 and "WebSocket" in script
    assert _get(served.url("/"), jar)[0] == 200
    # Opened at 127.0.0.1, the page sends its websocket there (where its cookie lives).
    status, _, page = _get(served.url(f"/?token={served.token}", host="127.0.0.1"))
    assert status == 200 and f"ws://127.0.0.1:{served.port}/ws" in page


def test_a_websocket_with_the_token_and_own_origin_gets_the_runs_screen(served):
    out, _ = asyncio.run(
        ws_session(_ws_url(served, served.token), {"Origin": served.origin}, until="poisson-8gpu")
    )
    assert "Noise2Noise experiments" in out and "poisson-8gpu" in out
    cookie = {"Origin": served.origin, "Cookie": f"n2n-serve-{served.port}={served.token}"}
    out, _ = asyncio.run(ws_session(_ws_url(served, None), cookie, until="Noise2Noise"))
    assert "Noise2Noise experiments" in out


# -- Origin and Host --------------------------------------------------------------------


def test_a_websocket_from_another_origin_is_refused_even_with_the_token(served):
    url = _ws_url(served, served.token)
    for origin in ("http://evil.example", "null", f"http://localhost:{served.port + 1}"):
        assert asyncio.run(ws_session(url, {"Origin": origin})) == 403, origin
    assert asyncio.run(ws_session(url, {})) == 403  # no Origin: not a page of ours either
    jar = {"Origin": "http://evil.example", "Cookie": f"n2n-serve-{served.port}={served.token}"}
    assert asyncio.run(ws_session(_ws_url(served, None), jar)) == 403
    # Another site's request for the page itself is refused too.
    assert _get(served.url(f"/?token={served.token}"), {"Origin": "http://evil.example"})[0] == 403
    # 127.0.0.1's page is this server's too.
    out, _ = asyncio.run(
        ws_session(
            _ws_url(served, served.token, host="127.0.0.1"),
            {"Origin": f"http://127.0.0.1:{served.port}"},
            until="Noise2Noise",
        )
    )
    assert "Noise2Noise experiments" in out


def test_a_host_that_is_not_this_server_is_refused(served):
    """DNS rebinding: evil.example resolving to 127.0.0.1 sends its own name as Host."""
    for host in ("evil.example", f"evil.example:{served.port}", f"localhost:{served.port + 1}"):
        status, _, body = _get(served.url(f"/?token={served.token}"), {"Host": host})
        assert status == 403 and "Host" in body, host
    rebound = {
        "Host": f"evil.example:{served.port}",
        "Origin": f"http://evil.example:{served.port}",
    }
    assert asyncio.run(ws_session(_ws_url(served, served.token), rebound)) == 403
    assert (
        _get(served.url(f"/?token={served.token}"), {"Host": f"LocalHost:{served.port}"})[0] == 200
    )


# -- the session cap ----------------------------------------------------------------------


def _sessions_of(pid: int) -> int:
    """How many ``n2n_tui.app`` session processes descend from ``pid``."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parents[int(entry.name)] = (
                int(fields[1]),
                b"n2n_tui.app" in cmd and b"--serve" not in cmd,
            )

    def descends(p: int) -> bool:
        while p in parents and p > 1:
            p = parents[p][0]
            if p == pid:
                return True
        return False

    return sum(1 for p, (_, is_app) in parents.items() if is_app and descends(p))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes through /proc")
def test_sessions_past_the_cap_get_a_message_and_no_process(tmp_path):
    s = Served(tmp_path, "--max-sessions", "1")
    try:
        headers = {"Origin": s.origin}

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                first = await session.ws_connect(_ws_url(s, s.token), headers=headers)
                out = ""
                deadline = time.monotonic() + 60
                while "Noise2Noise" not in out and time.monotonic() < deadline:
                    msg = await first.receive(timeout=30)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        out += msg.data.decode("utf-8", "replace")
                assert "Noise2Noise" in out
                second = await session.ws_connect(_ws_url(s, s.token), headers=headers)
                msg = await second.receive(timeout=10)
                refused = msg.data.decode()
                assert "too many sessions: 1 open, at most 1 (--max-sessions 1)" in refused
                assert _sessions_of(s.proc.pid) == 1  # no process for the refused tab
                await second.close()
                await first.close()
                # The first one's end (its process gone) frees its place.
                deadline = time.monotonic() + 60
                while _sessions_of(s.proc.pid) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                assert _sessions_of(s.proc.pid) == 0
                out, _ = await ws_session(_ws_url(s, s.token), headers, until="Noise2Noise")
                assert "Noise2Noise experiments" in out

        asyncio.run(scenario())
    finally:
        s.stop()


def test_a_bad_session_cap_is_a_user_error(capsys):
    assert main(["--serve", "8000", "--max-sessions", "0"]) == 2
    assert capsys.readouterr().err == "error: --max-sessions 0: at least 1\n"
    assert main(["--max-sessions", "2"]) == 2
    assert capsys.readouterr().err == "error: --max-sessions needs --serve PORT\n"


# -- ports --------------------------------------------------------------------------------


def test_a_port_in_use_is_one_error_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "n2n_tui.app", "--serve", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env=ENV,
        )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"error: --serve {port}: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("port", ["0", "70000", "-1", "abc", "80.5", ""])
def test_a_bad_port_is_one_error_line(port, capsys):
    assert main(["--serve", port]) == 2
    assert capsys.readouterr().err == f"error: --serve {port}: a port is 1 to 65535\n"


# -- the token file -------------------------------------------------------------------------


def test_the_token_file_is_new_ours_and_0600(tmp_path):
    path = tmp_path / "token"
    old = os.umask(0)  # even with no umask, nobody else reads it
    try:
        written = write_token_file(path, "t0ken")
    finally:
        os.umask(old)
    assert path.read_text() == "t0ken\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A stale one of ours (an earlier start's) is replaced by a new file.
    path.chmod(0o644)
    write_token_file(path, "t0ken2")
    assert path.read_text() == "t0ken2\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    remove_token_file(path, written, "t0ken")  # not the file we wrote any more: kept
    assert path.exists()
    remove_token_file(path, path.stat(), "t0ken2")
    assert not path.exists()


def test_the_token_file_never_goes_through_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    link = tmp_path / "token"
    link.symlink_to(target)
    with pytest.raises(UserError, match="symlink"):
        write_token_file(link, "t0ken")
    assert target.read_text() == "keep\n"
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    with pytest.raises(UserError, match="symlink"):
        write_token_file(tmp_path / "dangling", "t0ken")
    assert not (tmp_path / "nothing").exists()
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UserError, match="regular file"):
        write_token_file(tmp_path / "fifo", "t0ken")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_token_file_of_another_user_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_text("theirs\n")
    os.chown(path, 65534, 65534)
    with pytest.raises(UserError, match="not ours"):
        write_token_file(path, "t0ken")
    assert path.read_text() == "theirs\n"


def test_a_token_file_that_cannot_be_written_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "no such folder" / "token"
    assert main(["--serve", str(_free_port()), "--token-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --token-file {path}: cannot write it:") and err.count("\n") == 1


# -- a real browser -------------------------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Run before the page's own scripts: keeps the xterm.js Terminal that textual-serve's
# script assigns to ``this.terminal``, and reads its screen as text (the terminal draws
# on a canvas, so its text is not in the DOM).
TERMINAL_HOOK = r"""
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer) window.__n2nTerminal = value;
  },
});
window.__n2nScreen = () => {
  const t = window.__n2nTerminal;
  if (!t) return "";
  const buffer = t.buffer.active, rows = [];
  for (let i = 0; i < t.rows; i++) {
    const line = buffer.getLine(buffer.viewportY + i);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\n");
};
"""


class DevTools:
    """The smallest client of the DevTools protocol: one page, commands and answers."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.n = 0

    async def call(self, method: str, **params) -> dict:
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=30)
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return msg["result"]

    async def eval(self, expression: str, await_promise: bool = False):
        result = await self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression)
            if value or time.monotonic() > deadline:
                return value
            await asyncio.sleep(0.3)


def _loaded(host: str) -> str:
    """An expression: the text of the page once the one at ``host`` has loaded (the
    one before may still be there just after a navigation starts)."""
    return (
        f"location.host === {host!r} && document.readyState === 'complete'"
        " && document.body.innerText"
    )


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def test_a_browser_with_the_token_url_shows_the_runs_screen(served, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip(f"no Chromium ({', '.join(CHROMIUM_NAMES)}) on PATH: apt-get install chromium")
    profile = Path(tempfile.mkdtemp(dir=tmp_path))
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
        + ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
        + ["--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0"]
        + ["--window-size=1200,800", "--host-resolver-rules=MAP evil.example 127.0.0.1"]
        + ["about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"  # Chromium writes the port it took here
        deadline = time.monotonic() + 60
        while len(active.read_text().split() if active.exists() else []) < 2:
            assert browser.poll() is None and time.monotonic() < deadline, "Chromium did not start"
            time.sleep(0.1)
        devtools_port = active.read_text().split()[0]

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{devtools_port}/json/list") as r:
                    page = next(t for t in await r.json() if t["type"] == "page")
                async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    tab = DevTools(ws)
                    await tab.call("Page.enable")  # else the script below is not run
                    await tab.call("Page.addScriptToEvaluateOnNewDocument", source=TERMINAL_HOOK)
                    await tab.call("Page.navigate", url=served.url("/"))
                    body = await tab.wait_for(_loaded(f"localhost:{served.port}"))
                    assert body.startswith("403 Forbidden") and "token" in body
                    await tab.call("Page.navigate", url=served.url(f"/?token={served.token}"))
                    screen = await tab.wait_for(
                        "window.__n2nScreen && window.__n2nScreen().includes('poisson-8gpu')"
                        " && window.__n2nScreen()"
                    )
                    assert screen and "n2n — Noise2Noise experiments" in screen, screen
                    assert await tab.eval("document.cookie") == ""  # HttpOnly: scripts never see it
                    shot = await tab.call("Page.captureScreenshot")
                    (tmp_path / "runs-screen.png").write_bytes(base64.b64decode(shot["data"]))
                    # Another site (evil.example, resolved to 127.0.0.1 as a rebinding DNS
                    # would): its page is refused, and its scripts' websockets to
                    # localhost too, with the cookie the browser now holds or the token.
                    await tab.call("Page.navigate", url=f"http://evil.example:{served.port}/")
                    body = await tab.wait_for(_loaded(f"evil.example:{served.port}"))
                    assert body.startswith("403 Forbidden") and "Host" in body
                    for token in (None, served.token):
                        opened = await tab.eval(
                            "new Promise(done => { const ws = new WebSocket("
                            f"{_ws_url(served, token)!r}); ws.onopen = () => done('opened');"
                            " ws.onerror = () => done('refused'); })",
                            await_promise=True,
                        )
                        assert opened == "refused"
                    refused = f"Origin 'http://evil.example:{served.port}': a websocket must come"
                    deadline = time.monotonic() + 20  # the server's log comes through a pipe
                    while sum(refused in line for line in served.lines) < 2:
                        assert time.monotonic() < deadline, "".join(served.lines)
                        await asyncio.sleep(0.1)

        asyncio.run(scenario())
    finally:
        browser.terminate()
        browser.wait(timeout=20)
