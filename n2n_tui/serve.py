"""``n2n-tui --serve PORT``: the same manager in a browser, through textual-serve.

Each browser tab gets its own ``n2n-tui`` process with the same arguments, so a
cluster user can forward one port over SSH (``ssh -L 8000:localhost:8000 node``)
and open http://localhost:8000. It listens on localhost only: the SSH tunnel is
the authentication. textual-serve is the optional extra ``serve``.
"""

from __future__ import annotations

import os
import shlex
import sys

from n2n_core.errors import UserError

INSTALL_HINT = "pip install 'n2n[serve]' (or pip install textual-serve)"


def app_command(args: list[str]) -> str:
    """The shell command textual-serve runs for each browser session."""
    return shlex.join([sys.executable, "-m", "n2n_tui.app", *args])


def serve(port: int, app_args: list[str], host: str = "localhost") -> None:
    """Serve until interrupted (blocking)."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise UserError(f"--serve: textual-serve is not installed; {INSTALL_HINT}") from None
    # A browser terminal answers no graphics queries: half-blocks, without asking.
    os.environ.setdefault("N2N_IMAGES", "halfblock")
    Server(app_command(app_args), host=host, port=port, title="n2n").serve()
