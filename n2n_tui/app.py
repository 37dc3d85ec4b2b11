"""``n2n-tui``: the terminal experiment manager, a view over run folders.

Runs are started as detached ``n2n-core`` processes and followed by tailing their
run folders, so a run started headless (or before the TUI was opened) looks the
same as one started here, and quitting never stops training.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.signal import Signal
from textual.worker import Worker

from n2n_core.runs.layout import RunPaths
from n2n_core.runs.summary import RunSummary
from n2n_core.version import package_version

from .models.alerts import Alert, AlertWatch
from .models.procs import Started, probe_devices
from .models.runindex import RunIndex


class N2NApp(App):
    """The application: a run watcher shared by all screens, and the screens."""

    CSS_PATH = "app.tcss"
    TITLE = "n2n"
    SUB_TITLE = "Noise2Noise experiments"
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        results_dir: str | Path = "results",
        presets_dir: str | Path = "presets",
        replay: str | Path | None = None,
        speed: float = 1.0,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.5,
        device_probe: Callable[[], dict] = probe_devices,
        images: str | None = None,
    ):
        super().__init__()
        from .images import choose_mode, mode_from_env

        # Before Textual owns the terminal: loading textual-image asks it questions.
        self.image_mode = choose_mode(images or mode_from_env())  # type: ignore[arg-type]
        self.results_dir = Path(results_dir)
        self.presets_dir = Path(presets_dir)
        self.replay_dir = Path(replay) if replay else None
        self.replay_speed = speed
        self.clock = clock
        self.poll_interval = poll_interval
        self.rows: list[RunSummary] = []
        self.rows_loaded = False
        self.rows_unread = 0
        self.runs_changed: Signal[list[RunSummary]] = Signal(self, "runs-changed")
        self.children_started: list[Started] = []
        # Workers add children while the watcher thread reaps them: one lock for both.
        self._children_lock = threading.Lock()
        self._wake = threading.Event()
        self._index = RunIndex(self.results_dir)
        # Launch's last values, so that coming back to it starts where you left.
        self.launch_memory: dict | None = None
        # What `n2n-core devices` reported (None until asked): absent devices are not offered.
        self.device_probe = device_probe
        self.devices: list[str] | None = None
        self.cpu_cores: int | None = None
        self._alerts = AlertWatch()

    # -- screens -------------------------------------------------------------

    def on_mount(self) -> None:
        from .screens.dashboard import DashboardScreen
        from .screens.runs import RunsScreen

        if self.replay_dir is not None:
            self.push_screen(DashboardScreen(self.replay_dir, replay_speed=self.replay_speed))
        else:
            self.push_screen(RunsScreen())
            self.watch_runs()

    def open_runs(self) -> None:
        """The run list in place of the screen shown (a replay opened from the command line)."""
        from .screens.runs import RunsScreen

        self.switch_screen(RunsScreen())
        self.watch_runs()

    def action_help(self) -> None:
        from .screens.help import help_text
        from .widgets.common import TextModal

        if isinstance(self.screen, TextModal):
            return
        self.push_screen(TextModal("n2n-tui — keys", help_text(self.screen)))

    def relaunch(self, run_dir: Path) -> None:
        """Launch, filled in from a run's own resolved preset and name, to change and start again."""
        from .screens.launch import LaunchScreen

        preset = RunPaths(run_dir).preset
        if not preset.is_file():
            self.notify(
                f"{run_dir.name} has no preset.yaml to relaunch", title="Relaunch", markup=False
            )
            return
        name = run_dir.name.split("-", 1)[1] if "-" in run_dir.name else run_dir.name
        self.push_screen(LaunchScreen(preset, name=name))

    # -- the run watcher -------------------------------------------------------

    def rescan(self) -> None:
        """Scan the results dir now (after a launch, stop or delete)."""
        self._wake.set()

    def forget_run(self, path: Path) -> None:
        self._index.forget(path)

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def watch_runs(self) -> None:
        from textual.worker import get_current_worker

        worker = get_current_worker()
        index = self._index
        while not worker.is_cancelled:
            self._reap_children()
            try:
                rows = index.scan()
            except OSError as e:
                self.call_from_thread(
                    self.notify, f"cannot read {self.results_dir}: {e}", severity="error"
                )
                rows, index.changed = [], True
            # The index keeps a row the same object while nothing in it changed: an idle
            # scan of 10,000 runs publishes nothing and redraws nothing.
            if index.changed or (not self.rows_loaded and not index.unread):
                self.call_from_thread(self._publish_rows, rows, index.unread)
                # Alerts compare whole listings: the first complete one is the baseline.
                for alert in [] if index.unread else self._alerts.update(rows):
                    self.call_from_thread(self.alert, alert)
            if not self._index.pending:
                self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _publish_rows(self, rows: list[RunSummary], unread: int = 0) -> None:
        self.rows = rows
        self.rows_unread = unread  # run folders not read yet: the list is still growing
        self.rows_loaded = self.rows_loaded or not unread
        self.runs_changed.publish(rows)

    def adopt_child(self, started: Started) -> None:
        """A process this app started (launch, resume, sweep), to be waited for."""
        with self._children_lock:
            self.children_started.append(started)

    def alert(self, alert: Alert) -> None:
        """A toast on whatever screen is showing, and the terminal bell."""
        # The message quotes run names and engine errors: text, never markup.
        self.notify(
            alert.message, title=alert.title, severity=alert.severity, timeout=12, markup=False
        )
        self.bell()

    def _reap_children(self) -> None:
        # Children we started are waited for, so they never linger as zombies
        # (a zombie's pid still answers kill(pid, 0) and would look alive).
        with self._children_lock:
            self.children_started[:] = [c for c in self.children_started if c.proc.poll() is None]

    # -- failures of workers ---------------------------------------------------

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        from .screens.base import worker_failed

        worker_failed(self, event)

    async def action_quit(self) -> None:
        self._wake.set()
        self.workers.cancel_all()
        self.exit()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="n2n-tui",
        description="Terminal experiment manager for n2n: presets, launch, live runs, replay.",
    )
    p.add_argument("--version", action="version", version=f"n2n-tui {package_version()}")
    p.add_argument(
        "--results-dir", default="results", help="folder of run folders (default: results)"
    )
    p.add_argument(
        "--presets-dir",
        default="presets",
        help="local presets: add to and override the built-in ones; edited presets are "
        "saved here (default: presets)",
    )
    p.add_argument(
        "--replay", metavar="RUN_DIR", help="play a finished run's log through the dashboard"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay speed: 1 real time, 50 faster, 0 the final state at once (default: 1)",
    )
    p.add_argument(
        "--serve",
        metavar="PORT",  # checked in main: a bad one is one error: line, not argparse's usage
        help=(
            "serve the manager to a browser on localhost:PORT (textual-serve; tunnel it over SSH "
            "to the same port number). Prints the URL to open, http://localhost:PORT/?token=...: "
            "every request needs that token (a new one each start), and a websocket's Origin and "
            "every Host header must be this server's own"
        ),
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        help="with --serve: also write the token to this new file, mode 0600, for scripts",
    )
    p.add_argument(
        "--max-sessions",
        metavar="N",
        type=int,
        help="with --serve: at most N browser sessions (each an n2n-tui process) at once (default: 4)",
    )
    return p.parse_args(argv)


def forwarded_args(args: argparse.Namespace) -> list[str]:
    """The options each served session starts with (all but --serve and its options)."""
    out = ["--results-dir", args.results_dir, "--presets-dir", args.presets_dir]
    if args.replay:
        out += ["--replay", args.replay, "--speed", str(args.speed)]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.speed < 0:
        print("error: --speed must be >= 0", file=sys.stderr)
        return 2
    from n2n_core.errors import UserError, error_line

    from .images import mode_from_env

    try:
        if args.replay:
            from n2n_core.runs.folders import resolve_run_dir

            resolve_run_dir(args.replay)
        images = mode_from_env()
        if args.serve is None:
            for flag, value in (
                ("--token-file", args.token_file),
                ("--max-sessions", args.max_sessions),
            ):
                if value is not None:
                    raise UserError(f"{flag} needs --serve PORT")
        else:
            from .serve import DEFAULT_MAX_SESSIONS, serve

            port = int(args.serve) if args.serve.strip().lstrip("-").isdigit() else 0
            if not 1 <= port <= 65535:
                raise UserError(f"--serve {args.serve}: a port is 1 to 65535")
            max_sessions = DEFAULT_MAX_SESSIONS if args.max_sessions is None else args.max_sessions
            serve(port, forwarded_args(args), max_sessions, args.token_file)
            return 0
    except UserError as e:
        print(error_line(str(e)), file=sys.stderr)
        return 2
    app = N2NApp(
        results_dir=args.results_dir,
        presets_dir=args.presets_dir,
        replay=args.replay,
        speed=args.speed,
        images=images,
    )
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
