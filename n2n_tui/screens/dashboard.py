"""Run dashboard: live charts, current values, ETA, log tail; stop / resume; replay controls."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Log
from textual.worker import get_current_worker

from n2n_core.runs import effective_status, read_run_json

from ..feed import LogTail, MetricsFollower, RunFeed
from ..procs import launch_log_path, start_detached, stop_run, tail_text
from ..replay import ReplayPlayer
from ..runindex import is_local, run_row
from ..widgets.common import ConfirmModal, ErrorModal
from ..widgets.dashboard import MetricCharts, ReplayBar, RunHeader, RunValues
from .base import BaseScreen

REDRAW_S = 0.25
FOLLOW_S = 0.5


class DashboardScreen(BaseScreen):
    """One run, live (following its folder) or replayed from its metrics log."""

    HELP = (
        "Charts of loss, PSNR (input PSNR dashed), learning rate and ms/step against "
        "step; the log tail below. Stop sends SIGTERM to the run's process group "
        "(SIGKILL after a grace period); resume continues from the last snapshot."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("s", "snapshots", "Snapshots"),
        Binding("x", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("L", "relaunch", "Relaunch…"),
        Binding("space", "pause", "Pause", show=False, priority=True),
        Binding("left", "seek(-0.05)", "−5%", show=False, priority=True),
        Binding("right", "seek(0.05)", "+5%", show=False, priority=True),
        Binding("home", "seek_to(0)", "Start", show=False, priority=True),
        Binding("end", "seek_to(1)", "End", show=False, priority=True),
        Binding(
            "plus,equals_sign", "speed(2)", "Faster", show=False, key_display="+", priority=True
        ),
        Binding("minus", "speed(0.5)", "Slower", show=False, priority=True, key_display="-"),
    ]

    def __init__(self, run_dir: str | Path, replay_speed: float | None = None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.feed = RunFeed()
        self.replay: ReplayPlayer | None = None
        if replay_speed is not None:
            self.replay = ReplayPlayer(self.run_dir / "metrics.jsonl", self.feed, replay_speed)
        self.log_tail = LogTail(self.run_dir / "log.txt")
        self.info: dict[str, Any] = read_run_json(self.run_dir) or {}
        self.status = self._status()
        self._drawn = (-1, -1, None, None)
        self._log_shown = 0
        self._note = ""
        self._halt = threading.Event()

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunHeader(id="dash-header")
        yield RunValues(id="dash-values")
        if self.replay:
            yield ReplayBar(id="dash-replay")
        yield MetricCharts(id="dash-charts")
        log = Log(id="dash-log", max_lines=400, auto_scroll=True)
        log.border_title = "events" if self.replay else "log.txt"
        log.can_focus = False
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self.title = "replay" if self.replay else "run"
        self.sub_title = self.run_dir.name
        if self.replay:
            self.play()
        else:
            self.follow()
        self.set_interval(REDRAW_S, self.redraw)
        self.call_after_refresh(self.redraw)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        replay_only = {"pause", "seek", "seek_to", "speed"}
        if action in replay_only:
            return self.replay is not None
        if action in {"stop", "resume"}:
            if self.replay is not None:
                return False
            if action == "stop":
                return True if self.status == "running" else None
            return True if self.status in ("stopped", "interrupted", "failed") else None
        return True

    # -- data --------------------------------------------------------------------

    def _status(self) -> str:
        if self.replay:
            return str(self.info.get("status", "finished")) if self.info else "no run.json"
        return effective_status(self.info) if self.info else "no run.json"

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False, name="follow run")
    def follow(self) -> None:
        worker = get_current_worker()
        metrics = MetricsFollower(self.run_dir / "metrics.jsonl", self.feed)
        last_info = 0.0
        while not worker.is_cancelled and not self._halt.is_set():
            more = metrics.poll()
            self.log_tail.poll()
            if time.monotonic() - last_info > 1.0:
                last_info = time.monotonic()
                self.info = read_run_json(self.run_dir) or {}
                self.status = self._status()
            if not more:
                self._halt.wait(FOLLOW_S if self.status == "running" else 2.0)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False, name="replay")
    def play(self) -> None:
        worker = get_current_worker()
        assert self.replay is not None
        self.replay.run(cancelled=lambda: worker.is_cancelled)

    def on_unmount(self) -> None:
        self._halt.set()
        if self.replay:
            self.replay.stop()

    # -- drawing -----------------------------------------------------------------

    def redraw(self) -> None:
        feed = self.feed
        info_key = (self.status, self.info.get("ended"), self.info.get("exit_code"))
        replay_key = None
        if self.replay:
            r = self.replay
            replay_key = (round(r.position(), 1), r.speed, r.paused, r.done)
        key = (feed.version, self.log_tail.version, info_key, replay_key)
        if key == self._drawn:
            return
        self._drawn = key
        v = feed.copy_values()
        now = self.app.clock()
        total = (
            self.info.get("total_steps") if isinstance(self.info.get("total_steps"), int) else None
        )
        with self.app.batch_update():
            self.query_one(RunHeader).show(
                self.run_dir.name, self.status, self.info, v, now, note=self._note
            )
            self.query_one(RunValues).show(v)
            self.query_one(MetricCharts).draw(feed, total)
            if self.replay:
                r = self.replay
                self.query_one(ReplayBar).show(r.position(), r.t0, r.t1, r.speed, r.paused, r.done)
                self._show_lines(v.events)
            else:
                lines = list(self.log_tail.lines) or v.events
                self._show_lines(lines)

    def _show_lines(self, lines: list[str]) -> None:
        log = self.query_one(Log)
        sig = (len(lines), lines[-1] if lines else None)
        if sig == self._log_shown:
            return
        self._log_shown = sig
        log.clear()
        log.write_lines(lines[-200:])
        log.scroll_end(animate=False)  # follow the tail like `tail -f`

    # -- actions -----------------------------------------------------------------

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        elif self.replay:
            self.app.exit()

    def action_relaunch(self) -> None:
        from .runs import relaunch

        relaunch(self, self.run_dir)

    def action_snapshots(self) -> None:
        from .snapshots import SnapshotsScreen

        self.app.push_screen(SnapshotsScreen(self.run_dir))

    def action_stop(self) -> None:
        row = run_row(self.run_dir)
        if row.status != "running" or row.pid is None:
            self.notify("this run is not running", title="Stop")
            return
        if not is_local(row):
            self.notify(f"runs on {row.host}; stop it there", title="Stop", severity="warning")
            return
        body = (
            f"Stop {self.run_dir.name} (pid {row.pid})?\n\nSIGTERM goes to its process group; "
            "it writes a snapshot and ends. Press r later to resume."
        )

        def done(yes: bool | None) -> None:
            if yes:
                self.stop(row.pid)

        self.app.push_screen(ConfirmModal("Stop run", body, yes="Stop", danger=True), done)

    @work(thread=True, exclusive=True, group="stop", exit_on_error=False, name="stop")
    def stop(self, pid: int) -> None:
        self._note = "stopping…"
        try:
            result = stop_run(pid)
        except PermissionError:
            self._note = ""
            self.app.call_from_thread(
                self.app.push_screen,
                ErrorModal("Stop failed", f"no permission to signal pid {pid}"),
            )
            return
        self._note = ""
        self.app.rescan()
        self.app.call_from_thread(self.notify, f"{self.run_dir.name}: {result}", title="Stop")

    def action_resume(self) -> None:
        if self.status not in ("stopped", "interrupted", "failed"):
            self.notify(f"run is {self.status}; nothing to resume", title="Resume")
            return
        self.resume()

    @work(thread=True, exclusive=True, group="resume", exit_on_error=False, name="resume")
    def resume(self) -> None:
        out = launch_log_path(self.app.results_dir, f"resume-{self.run_dir.name}")
        started = start_detached(["resume", str(self.run_dir)], out)
        self.app.children_started.append(started)
        self._note = "resuming…"
        code = None
        for _ in range(50):  # a child that fails at once fails within seconds
            code = started.proc.poll()
            if code is not None:
                break
            info = read_run_json(self.run_dir) or {}
            if info.get("status") == "running" and effective_status(info) == "running":
                break
            time.sleep(0.1)
        self._note = ""
        self.app.rescan()
        if code not in (None, 0):
            self.app.call_from_thread(
                self.app.push_screen,
                ErrorModal(
                    "Resume failed",
                    f"n2n-core resume {self.run_dir} exited with status {code}",
                    tail_text(out),
                ),
            )

    def action_pause(self) -> None:
        if self.replay:
            self.replay.toggle_pause()
            self.redraw()

    def action_seek(self, frac: float) -> None:
        r = self.replay
        if r and r.t0 is not None and r.t1 is not None:
            r.seek(r.position() + frac * (r.t1 - r.t0))

    def action_seek_to(self, frac: float) -> None:
        r = self.replay
        if r and r.t0 is not None and r.t1 is not None:
            r.seek(r.t0 + frac * (r.t1 - r.t0))

    def action_speed(self, factor: float) -> None:
        r = self.replay
        if r:
            r.set_speed(min(max((r.speed or 1.0) * factor, 0.125), 4096.0))
            self.redraw()
