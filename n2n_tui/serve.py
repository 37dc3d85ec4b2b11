"""``n2n-tui --serve PORT``: the same manager in a browser, through textual-serve.

Each browser tab gets its own ``n2n-tui`` process with the same arguments, so a
cluster user can forward one port over SSH (``ssh -L 8000:localhost:8000 node``)
and open the URL it prints. textual-serve is the optional extra ``serve``.

A session can start and delete runs, so the server lets in only whoever holds
its token, as notebook servers do:

- It listens on the loopback addresses only (127.0.0.1, and ::1 where there is
  one, so that nobody else can take ``localhost:PORT`` on the other one).
- Each start draws a new random token (``secrets.token_urlsafe``, 256 bits) and
  prints the URL that holds it, ``http://localhost:PORT/?token=...``, on stdout;
  ``--token-file PATH`` also writes it to a new file only its owner can read
  (mode 0600, never through a symlink; an existing file is replaced only when it
  is ours), removed again when the server stops.
- Every request, the page, its scripts, the websocket, a download, needs the
  token: as ``?token=`` or, after a page was loaded with it, as the cookie that
  page got (HttpOnly, SameSite=Strict, so other sites' pages never send it).
  Tokens are compared with ``hmac.compare_digest``. Anything else is a 403.
- The ``Host`` header must name this server, ``localhost:PORT``, ``127.0.0.1:PORT``
  or ``[::1]:PORT``: a page whose own name resolves to 127.0.0.1 (DNS rebinding)
  is refused. So forward the same port number over SSH.
- A websocket must come from this server's own page: its ``Origin`` must be
  ``http://`` one of those hosts (a browser always sends one; a script adds it).
  Another site's page that opens ``ws://localhost:PORT`` is refused before any
  process starts; so is any request that names another site as its ``Origin``.
- At most ``--max-sessions`` (4 unless told) sessions, each an ``n2n-tui``
  process, run at once; a tab past that gets a message in its terminal and no
  process.

Browsers share cookies between all ports of a host: the cookie is named per port
so that two servers do not overwrite each other's, but a page served by someone
else on another localhost port that the user opens would be sent it, as with any
notebook server on localhost.

Every check is an aiohttp middleware or an override in a subclass of
textual-serve's ``Server``; textual-serve itself is used as it is.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import os
import secrets
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from n2n_core.errors import UserError, printable
from n2n_core.files.safe import open_own

INSTALL_HINT = "pip install 'n2n[serve]' (or pip install textual-serve)"

DEFAULT_MAX_SESSIONS = 4

# How long a tab refused by the session cap keeps its message on screen: the page
# covers the terminal with "Session ended" as soon as its websocket closes.
REFUSED_SESSION_HOLD_S = 60.0

log = logging.getLogger("n2n.serve")


def app_command(args: list[str]) -> str:
    """The shell command textual-serve runs for each browser session."""
    return shlex.join([sys.executable, "-m", "n2n_tui.app", *args])


def new_token() -> str:
    """A fresh access token: 32 random bytes (256 bits), URL-safe."""
    return secrets.token_urlsafe(32)


def local_hosts(port: int) -> frozenset[str]:
    """The ``Host`` headers a browser sends for this server (lower case)."""
    names = ("localhost", "127.0.0.1", "[::1]")
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:  # the default port is left out of Host
        hosts.update(names)
    return frozenset(hosts)


def local_origins(port: int) -> frozenset[str]:
    """The ``Origin`` headers of this server's own page."""
    return frozenset(f"http://{host}" for host in local_hosts(port))


def token_matches(candidate: str | None, token: str) -> bool:
    """Whether ``candidate`` is ``token``, in time that does not depend on where they differ."""
    if candidate is None:
        return False
    # compare_digest takes ASCII str or bytes: a non-ASCII guess must be refused, not raise.
    return hmac.compare_digest(candidate.encode("utf-8", "replace"), token.encode("ascii"))


def cookie_name(port: int) -> str:
    """The cookie that carries the token; named per port because browsers share
    cookies between all ports of a host (two servers must not overwrite each other's)."""
    return f"n2n-serve-{port}"


def token_url(port: int, token: str) -> str:
    return f"http://localhost:{port}/?token={token}"


def refusal(port: int, why: str) -> str:
    """The one line a refused request reads (no token in it)."""
    return f"403 Forbidden: n2n-tui --serve {port}: {why}\n"


# -- the token file ---------------------------------------------------------------


def write_token_file(path: str | Path, token: str) -> os.stat_result:
    """Write ``token`` to a new file at ``path`` that only we can read (0600).

    Created exclusively and never through a symlink (:func:`open_own`); a regular
    file already there is replaced only when it is ours (a file of another user is
    refused). Returns the new file's stat, which :func:`remove_token_file` checks."""
    what = "the --serve token file"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        try:
            fd = open_own(path, flags, what, mode=0o600)
        except FileExistsError:
            st = os.lstat(path)  # open_own has refused a symlink or special file already
            if st.st_uid != os.geteuid():
                raise UserError(
                    f"--token-file {path}: exists and belongs to uid {st.st_uid}; "
                    "refusing to replace a file that is not ours"
                ) from None
            os.unlink(path)
            try:
                fd = open_own(path, flags, what, mode=0o600)  # still exclusive: a race loses
            except FileExistsError:
                raise UserError(
                    f"--token-file {path}: created again by someone else meanwhile; refusing it"
                ) from None
        try:
            os.fchmod(fd, 0o600)  # the mode asked at creation is only what the umask leaves
            os.write(fd, (token + "\n").encode("ascii"))
            return os.fstat(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise UserError(f"--token-file {path}: cannot write it: {e.strerror or e}") from None


def remove_token_file(path: str | Path, written: os.stat_result, token: str) -> None:
    """Remove the token file when it is still the one we wrote (a stale token is useless).

    The same inode and our token in it: an inode number alone can be the one a newer
    file took after ours was replaced."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) != (written.st_dev, written.st_ino):
            return
        fd = open_own(path, os.O_RDONLY, "the --serve token file")
        try:
            ours = os.read(fd, 4096) == (token + "\n").encode("ascii")
        finally:
            os.close(fd)
        if ours:
            os.unlink(path)
    except (OSError, UserError):
        pass


# -- listening ----------------------------------------------------------------------


def listen(port: int) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1:PORT and, where the machine has IPv6, [::1]:PORT.

    Bound here, before the server starts, so that a port in use is one ``error:``
    line. Both loopback addresses are taken: a browser may try ``localhost`` on
    either, and another user must not be able to listen on the one we left."""
    socks: list[socket.socket] = []
    try:
        for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                if family == socket.AF_INET6:
                    continue  # no IPv6 on this machine: nobody can listen there either
                raise
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, port))
            except OSError as e:
                if family == socket.AF_INET6 and e.errno in (
                    errno.EADDRNOTAVAIL,
                    errno.EAFNOSUPPORT,
                ):
                    socks.pop().close()  # IPv6 without a loopback address
                    continue
                shown = f"[{address}]" if family == socket.AF_INET6 else address
                raise UserError(
                    f"--serve {port}: cannot listen on {shown}:{port}: {e.strerror or e}"
                ) from None
            sock.listen(128)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


# -- the server ---------------------------------------------------------------------


def guarded_server(command: str, port: int, token: str, max_sessions: int) -> Any:
    """textual-serve's ``Server`` for ``command`` with the checks of this module.

    Built here because textual-serve is optional: importing this module must not need it."""
    import aiohttp_jinja2
    from aiohttp import WSCloseCode, web
    from textual_serve.server import Server, to_int

    hosts = local_hosts(port)
    origins = local_origins(port)
    cookie = cookie_name(port)

    def refuse(request: web.Request, why: str) -> web.Response:
        # The path only: a query may hold a (wrong or right) token.
        log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote, why)
        return web.Response(status=403, text=refusal(port, why))

    class GuardedServer(Server):
        def __init__(self) -> None:
            super().__init__(command, host="localhost", port=port, title="n2n")
            self.sessions = 0
            self.max_sessions = max_sessions

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(self.guard)
            return app

        @web.middleware
        async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
            """Host, Origin and token, for every request before any handler sees it."""
            host = request.headers.get("Host", "").lower()
            if host not in hosts:
                return refuse(
                    request,
                    f"Host {printable(host)!r} is not localhost:{port} or 127.0.0.1:{port} "
                    "(forward the same port number)",
                )
            origin = request.headers.get("Origin")
            upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
            if (origin is not None or upgrade or request.path == "/ws") and origin not in origins:
                why = "no Origin header" if origin is None else f"Origin {printable(origin)!r}"
                return refuse(request, f"{why}: a websocket must come from this server's own page")
            by_query = token_matches(request.query.get("token"), token)
            if not by_query and not token_matches(request.cookies.get(cookie), token):
                return refuse(
                    request, "no valid token; open the URL printed at its start (/?token=...)"
                )
            response = await handler(request)
            if not response.prepared:  # a websocket has answered already
                # The page's URL holds the token: no Referer to other sites, no cache, no frames.
                response.headers["Referrer-Policy"] = "no-referrer"
                response.headers["Cache-Control"] = "no-store"
                response.headers["X-Frame-Options"] = "DENY"
                if by_query:  # the page's scripts and websocket carry this instead
                    response.set_cookie(cookie, token, path="/", httponly=True, samesite="Strict")
            return response

        @aiohttp_jinja2.template("app_index.html")
        async def handle_index(self, request: web.Request) -> dict[str, Any]:
            # textual-serve builds the page's URLs from its one public URL (localhost);
            # here they use the host the page was opened at (checked above), so that a
            # page opened at 127.0.0.1 sends its cookie to its own websocket.
            base = f"http://{request.headers['Host'].lower()}"
            router = request.app.router
            static = f"{base}{router['static'].url_for(filename='/')}".rstrip("/") + "/"
            websocket = "ws" + f"{base}{router['websocket'].url_for()}"[len("http") :]
            return {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": websocket,
                "config": {"static": {"url": static}},
                "application": {"name": self.title},
            }

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            if self.sessions >= self.max_sessions:
                return await self.refuse_session(request)
            self.sessions += 1  # no await since the check: two tabs cannot both pass it
            try:
                return await super().handle_websocket(request)
            finally:
                self.sessions -= 1

        async def refuse_session(self, request: web.Request) -> web.WebSocketResponse:
            """A tab past the cap: a message in its terminal, then closed; no process."""
            why = (
                f"too many sessions: {self.sessions} open, at most {self.max_sessions} "
                f"(--max-sessions {self.max_sessions}); close one and reload this page"
            )
            log.warning("refused a session from %s: %s", request.remote, why)
            ws = web.WebSocketResponse(heartbeat=15)
            await ws.prepare(request)
            await ws.send_bytes(f"\r\n  n2n-tui --serve: {why}.\r\n".encode())

            async def until_closed() -> None:
                async for _ in ws:  # the page's resize and ping messages: no one answers
                    pass

            try:
                await asyncio.wait_for(until_closed(), REFUSED_SESSION_HOLD_S)
            except asyncio.TimeoutError:
                pass
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many sessions")
            return ws

        async def on_startup(self, app: web.Application) -> None:
            print(
                f"n2n-tui: serving {self.command!r} to a browser; open (the URL holds the token):\n"
                f"    {token_url(port, token)}\n"
                "Press Ctrl+C to quit.",
                flush=True,
            )

        def run(self, socks: list[socket.socket]) -> None:
            """textual-serve's ``serve``, on sockets already bound, without an access log
            (its request lines would hold the token)."""
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_exit)
            web.run_app(
                self._make_app(),
                sock=socks,
                handle_signals=False,
                loop=loop,
                print=lambda *args: None,
                access_log=None,
            )

    return GuardedServer()


def serve(
    port: int,
    app_args: list[str],
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    token_file: str | Path | None = None,
) -> None:
    """Serve until interrupted (blocking)."""
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        raise UserError(f"--serve: textual-serve is not installed; {INSTALL_HINT}") from None
    if not 1 <= port <= 65535:
        raise UserError(f"--serve {port}: a port is 1 to 65535")
    if max_sessions < 1:
        raise UserError(f"--max-sessions {max_sessions}: at least 1")
    # A browser terminal answers no graphics queries: half-blocks, without asking.
    os.environ.setdefault("N2N_IMAGES", "halfblock")
    socks = listen(port)
    written = None
    try:
        token = new_token()
        if token_file is not None:
            written = write_token_file(token_file, token)
        guarded_server(app_command(app_args), port, token, max_sessions).run(socks)
    finally:
        for sock in socks:
            sock.close()
        if written is not None:
            remove_token_file(token_file, written, token)
