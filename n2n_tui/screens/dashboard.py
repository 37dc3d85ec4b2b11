"""Run dashboard: live charts, current values, ETA, log tail; stop / resume; replay controls."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Log
from textual.worker import get_current_worker

from n2n_core.errors import UserError
from n2n_core.runs.info import RunInfo, effective_status, read_run_info, unreadable_status
from n2n_core.runs.stop import stop_run

from ..models.follow import RunFollower, event_line
from ..models.procs import launch_log_path, start_detached, tail_text
from ..models.replay import ReplayPlayer
from ..widgets.common import ConfirmModal, ErrorModal
from ..widgets.dashboard import MetricCharts, ReplayBar, RunHeader, RunValues, SysLine, SysTable
from ..widgets.images import SamplePanel
from .base import BaseScreen

REDRAW_S = 0.25
CHARTS_MIN_S, CHARTS_MAX_S = 0.5, 2.5  # chart redraws: 80x24 every 0.5 s, 200x50 every 2.5 s
FOLLOW_S = 0.5


class DashboardScreen(BaseScreen):
    """One run, live (following its folder) or replayed from its metrics log."""

    SHORT_ROWS = 36  # a short terminal gives the charts the rows; the log keeps a few
    HELP = (
        "Charts of loss, PSNR (input PSNR dashed), learning rate and ms/step against "
        "step; the log tail below, and the validation pictures beside it when the run "
        "writes them. Stop sends SIGTERM to the run's process group "
        "(SIGKILL after a grace period); resume continues from the last snapshot."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("s", "snapshots", "Snapshots"),
        Binding("x", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("L", "relaunch", "Relaunch…", show=False),
        Binding("space", "pause", "Pause", show=False, priority=True),
        Binding("left", "seek(-0.05)", "−5%", show=False, priority=True),
        Binding("right", "seek(0.05)", "+5%", show=False, priority=True),
        Binding("home", "seek_to(0)", "Start", show=False, priority=True),
        Binding("end", "seek_to(1)", "End", show=False, priority=True),
        Binding(
            "plus,equals_sign", "speed(2)", "Faster", show=False, key_display="+", priority=True
        ),
        Binding("minus", "speed(0.5)", "Slower", show=False, priority=True, key_display="-"),
        Binding("left_square_bracket", "samples(-1)", "Older sample step", show=False),
        Binding("right_square_bracket", "samples(1)", "Newer sample step", show=False),
        Binding("less_than_sign", "sample_image(-1)", "Previous image of the step", show=False),
        Binding("greater_than_sign", "sample_image(1)", "Next image of the step", show=False),
        Binding("z", "zoom", "Picture 1:1 / whole", show=False),
        Binding("h", "pan(-1, 0)", "Pan the 1:1 picture left", show=False),
        Binding("l", "pan(1, 0)", "... right", show=False),
        Binding("k", "pan(0, -1)", "... up", show=False),
        Binding("j", "pan(0, 1)", "... down", show=False),
        Binding("p", "pictures", "Pictures"),
        Binding("o", "open_picture", "Open in browser"),
        Binding("m", "machine", "Machine"),
    ]

    def __init__(self, run_dir: str | Path, replay_speed: float | None = None):
        super().__init__()
        self.run_dir = Path(run_dir)
        # A live run shows its log.txt; a replay shows the events it has played so far.
        self.feed = RunFollower(self.run_dir, log=replay_speed is None)
        self.replay: ReplayPlayer | None = None
        if replay_speed is not None:
            self.replay = ReplayPlayer(self.feed, replay_speed)
        self.info: RunInfo | None = read_run_info(self.run_dir)
        self.status = self._status()
        self._drawn: tuple | None = None  # (data key, clock tick) last drawn
        self._drawn_status = ""
        self._charts_version: int | None = None
        self._charts_at = 0.0
        self._log_shown = 0
        self._note = ""
        self._stop_modal: ConfirmModal | None = None
        self._halt = threading.Event()

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunHeader(id="dash-header")
        yield RunValues(id="dash-values")
        yield SysLine(id="dash-sys")
        if self.replay:
            yield ReplayBar(id="dash-replay")
        yield MetricCharts(id="dash-charts")
        log = Log(id="dash-log", max_lines=400, auto_scroll=True)
        log.border_title = "events" if self.replay else "log.txt"
        log.can_focus = False
        with Horizontal(id="dash-bottom"):
            yield log
            yield SamplePanel(self.run_dir, id="dash-samples")
            yield SysTable(id="dash-machine")
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

    def on_resize(self) -> None:
        self._drawn = None  # the header's progress bar follows the width
        self._charts_version = None

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        replay_only = {"pause", "seek", "seek_to", "speed"}
        if action in ("pictures", "sample_image", "zoom", "pan", "samples"):
            return self.query_one(SamplePanel).has_samples
        if action == "open_picture":  # the browser view only: the real image in a tab
            return self.app.is_web and self.query_one(SamplePanel).has_samples
        if action == "machine":
            return self.query_one(SysLine).display
        if action in replay_only:
            return self.replay is not None
        if action in {"stop", "resume"}:
            # Always live: pressed where they cannot act, they say why.
            return self.replay is None
        return True

    # -- data --------------------------------------------------------------------

    def _status(self) -> str:
        if self.info is None:
            return unreadable_status(self.run_dir)
        if self.replay:
            return self.info.status or "finished"
        return effective_status(self.info, self.run_dir)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False, name="follow run")
    def follow(self) -> None:
        worker = get_current_worker()
        last_info = 0.0
        while not worker.is_cancelled and not self._halt.is_set():
            more = self.feed.poll().more
            if time.monotonic() - last_info > 1.0:
                last_info = time.monotonic()
                self.info = read_run_info(self.run_dir)
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
        self._settle()
        self.query_one(SamplePanel).poll(feed.values.step if self.replay else None)
        info = self.info or RunInfo()
        now = self.app.clock()
        # While running, elapsed time and ETA move every second with or without new records:
        # that redraws the header alone. The rest (charts, values, log) waits for new data.
        tick = int(now) if self.status == "running" else None
        info_key = (self.status, info.ended, info.exit_code, self._note)
        replay_key = None
        if self.replay:
            r = self.replay
            replay_key = (round(r.position(), 1), r.speed, r.paused, r.done)
        # The log wraps at its pane's width, which changes when the pictures pane appears.
        log_width = self.query_one(Log).scrollable_content_region.width
        key = (feed.version, feed.log_version, info_key, replay_key, log_width)
        self._draw_charts(feed, info.total_steps)
        if self._drawn is not None and key == self._drawn[0]:
            if tick != self._drawn[1]:
                self._drawn = (key, tick)
                self.query_one(RunHeader).show(
                    self.run_dir.name,
                    self.status,
                    self.info,
                    feed.copy_values(),
                    now,
                    note=self._note,
                )
            return
        if info_key[0] != self._drawn_status:  # the footer's stop/resume follow the status
            self._drawn_status = info_key[0]
            self.refresh_bindings()
        self._drawn = (key, tick)
        v = feed.copy_values()
        status, replayed = self.status, False
        if self.replay and not self.replay.done:
            # The replayed moment: its status and time, not the run's end.
            status, now, replayed = replayed_status(v), self.replay.position(), True
        with self.app.batch_update():
            self.query_one(RunHeader).show(
                self.run_dir.name, status, self.info, v, now, note=self._note, replayed=replayed
            )
            self.query_one(RunValues).show(v)
            self.query_one(SysLine).show(v.sys)
            self.query_one(SysTable).show(v.sys)
            if self.replay:
                r = self.replay
                self.query_one(ReplayBar).show(r.position(), r.t0, r.t1, r.speed, r.paused, r.done)
                self._show_lines([event_line(e) for e in v.events])
            elif feed.log_lines:
                self._show_log(feed)
            else:
                self._show_lines([event_line(e) for e in v.events])

    def _draw_charts(self, feed: RunFollower, total: int | None) -> None:
        """The charts, drawn again when their data changed, at most once per interval that
        grows with the screen (four braille charts at 200x50 cost more than the step a run
        logs every second): they lag a live run by at most that, the numbers above do not."""
        if self._charts_version == feed.version:
            return
        w, h = self.size
        interval = min(max(w * h / 4000, CHARTS_MIN_S), CHARTS_MAX_S)
        final = self.replay is not None and self.replay.done  # a replay's end stands still
        if (
            self._charts_version is not None
            and not final
            and time.monotonic() - self._charts_at < interval
        ):
            return
        self._charts_version, self._charts_at = feed.version, time.monotonic()
        self.query_one(MetricCharts).draw(feed, total)

    def _settle(self) -> None:
        """States that wait for the run end when the run says so, not when our worker returns."""
        if self._note == "stopping…" and self.status != "running":
            self._note = ""
        if self._note == "resuming…" and self.status == "running":
            self._note = ""
        modal = self._stop_modal
        if modal is not None and self.status != "running":
            self._stop_modal = None
            if modal.is_attached and self.app.screen is modal:
                modal.dismiss(False)
                self.notify(
                    f"{self.run_dir.name} ended by itself ({self.status}); nothing to stop",
                    title="Stop",
                )

    def _show_log(self, feed: RunFollower) -> None:
        """log.txt's new lines appended (a full rewrite only after a reset): the log pane
        is not drawn again from scratch at every step a run logs."""
        log = self.query_one(Log)
        width = log.scrollable_content_region.width
        shown = self._log_shown
        if (
            isinstance(shown, tuple)
            and shown[0] == "log"
            and shown[1:3] == (feed.log_resets, width)
        ):
            new = feed.log_total - shown[3]
            if new <= 0:
                return
            log.write_lines(wrap_lines(list(feed.log_lines)[-new:], width))
        else:
            log.clear()
            log.write_lines(wrap_lines(list(feed.log_lines)[-200:], width))
            log.scroll_end(animate=False)
        self._log_shown = ("log", feed.log_resets, width, feed.log_total)

    def _show_lines(self, lines: list[str]) -> None:
        log = self.query_one(Log)
        width = log.scrollable_content_region.width
        sig = (len(lines), lines[-1] if lines else None, width)
        if sig == self._log_shown:
            return
        self._log_shown = sig
        log.clear()
        log.write_lines(wrap_lines(lines[-200:], width))
        log.scroll_end(animate=False)  # follow the tail like `tail -f`

    # -- actions -----------------------------------------------------------------

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:  # opened by --replay: back is the run list, never quitting unasked
            self.app.open_runs()

    def action_relaunch(self) -> None:
        self.app.relaunch(self.run_dir)

    def action_snapshots(self) -> None:
        from .snapshots import SnapshotsScreen

        self.app.push_screen(SnapshotsScreen(self.run_dir))

    def _why_not(self, what: str) -> str | None:
        """Why stop/resume cannot act on this run's state, in words; None when they can."""
        name = self.run_dir.name
        if self.status == "corrupt run.json":
            return (
                f"{name}: run.json is corrupt, so which process runs it is unknown; "
                f"nothing to {what} from here"
            )
        if self.status == "no run.json":
            return f"{name} has no run.json (not started by n2n-core?); nothing to {what}"
        if what == "stop" and self.status != "running":
            return f"{name} is {self.status}; nothing to stop"
        if what == "resume" and self.status not in ("stopped", "interrupted", "failed"):
            return f"{name} is {self.status}; nothing to resume"
        return None

    def action_stop(self) -> None:
        why = self._why_not("stop")
        if why:
            self.notify(why, title="Stop")
            return
        # run.json alone says whether and where it runs: no metrics read on the UI thread.
        info = read_run_info(self.run_dir)
        if info is None or effective_status(info, self.run_dir) != "running":
            self.notify(f"{self.run_dir.name} is not running; nothing to stop", title="Stop")
            return
        if not info.on_this_host:
            self.notify(
                f"runs on {info.host}; stop it there",
                title="Stop",
                severity="warning",
                markup=False,
            )
            return
        body = (
            f"Stop {self.run_dir.name} (pid {info.pid})?\n\nSIGTERM goes to its process group "
            "and every rank; it writes a snapshot and ends. Press r later to resume."
        )

        def done(yes: bool | None) -> None:
            self._stop_modal = None
            if yes:
                self.stop()

        self._stop_modal = ConfirmModal("Stop run", body, yes="Stop", danger=True)
        self.app.push_screen(self._stop_modal, done)

    @work(thread=True, exclusive=True, group="stop", exit_on_error=False, name="stop")
    def stop(self) -> None:
        self._note = "stopping…"
        try:
            result = stop_run(self.run_dir)
        except (PermissionError, UserError) as e:
            self._note = ""
            why = str(e) if isinstance(e, UserError) else "no permission to signal the run"
            self.app.call_from_thread(self.app.push_screen, ErrorModal("Stop failed", why))
            return
        self.app.rescan()
        if result.outcome == "refused":
            self.app.call_from_thread(
                self.app.push_screen, ErrorModal("Stop refused", result.reason)
            )
            return
        self.app.call_from_thread(
            lambda: self.notify(f"{self.run_dir.name}: {result}", title="Stop", markup=False)
        )

    def action_resume(self) -> None:
        why = self._why_not("resume")
        if why:
            self.notify(why, title="Resume")
            return
        self._note = "resuming…"
        self.resume()

    @work(thread=True, exclusive=True, group="resume", exit_on_error=False, name="resume")
    def resume(self) -> None:
        out = launch_log_path(self.app.results_dir, f"resume-{self.run_dir.name}")
        started = start_detached(["resume", str(self.run_dir)], out)
        self.app.adopt_child(started)
        code = None
        for _ in range(50):  # a child that fails at once fails within seconds
            code = started.proc.poll()
            if code is not None:
                break
            if effective_status(read_run_info(self.run_dir), self.run_dir) == "running":
                break
            time.sleep(0.1)
        self.app.rescan()
        if code not in (None, 0):
            self._note = ""
            self.app.call_from_thread(
                self.app.push_screen,
                ErrorModal(
                    "Resume failed",
                    f"n2n-core resume {self.run_dir} exited with status {code}",
                    tail_text(out),
                ),
            )

    def action_samples(self, delta: int) -> None:
        self.query_one(SamplePanel).step_through(delta)

    def action_sample_image(self, delta: int) -> None:
        self.query_one(SamplePanel).image_through(delta)

    def action_zoom(self) -> None:
        self.query_one(SamplePanel).zoom()

    def action_pan(self, dx: int, dy: int) -> None:
        self.query_one(SamplePanel).pan(dx, dy)

    def action_open_picture(self) -> None:
        from ..images import open_in_browser

        path = self.query_one(SamplePanel).current_path()
        if path is not None and open_in_browser(self.app, path):
            self.notify(f"{path.name} opens in a new browser tab", title="Picture", markup=False)

    def action_pictures(self) -> None:
        """The sample strip shown, on a screen of its own at 1:1 (z: whole), to pan over."""
        from .pictures import PicturesScreen

        panel = self.query_one(SamplePanel)
        path = panel.current_path()
        if path is None:
            return
        label = f"step {panel.current:,} · {path.name} · noisy | denoised | clean"
        self.app.push_screen(
            PicturesScreen(f"{self.run_dir.name}: {label}", [(label, path)], zoomed=True)
        )

    def action_machine(self) -> None:
        """Every rank's system numbers in place of the log."""
        self.toggle_class("-machine")

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


def replayed_status(v) -> str:
    """What a replayed run was at the moment shown: training, or stopped between sessions."""
    if not v.session_closed:
        return "running"
    last = next((e for e in reversed(v.events) if e.msg), None)
    if last is not None and last.level == "error":
        return "failed"
    if last is not None and last.msg.startswith("finished"):
        return "finished"
    return "stopped"


def wrap_lines(lines: list[str], width: int) -> list[str]:
    """Log lines folded to the pane's width (continuations indented), never cut off."""
    if width < 20:
        return lines
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        out += textwrap.wrap(
            line, width, subsequent_indent="    ", drop_whitespace=False, replace_whitespace=False
        ) or [line]
    return out
