"""Runs: every run folder under the results dir, live."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Input, Static

from n2n_core.runs import RunSummary

from .. import formatting as fmt
from ..runindex import is_local
from ..widgets.common import ConfirmModal, ErrorModal, RunsTable
from ..widgets.common.status import status_text
from .base import BaseScreen

# What tells runs apart comes first: a narrow terminal cuts off the right end.
COLUMNS = (
    ("", 1),
    ("ID", 5),
    ("Name", 24),
    ("Status", 13),
    ("Step", 11),
    ("Best", 6),
    ("Last", 6),
    ("Device", 8),
    ("Prec", 4),
    ("ms/step", 7),
    ("Started", 9),
)


def relaunch(screen: BaseScreen, run_dir: Path) -> None:
    """Launch, filled in from a run's own resolved preset and name, to change and start again."""
    from .launch import LaunchScreen

    preset = run_dir / "preset.yaml"
    if not preset.is_file():
        screen.notify(f"{run_dir.name} has no preset.yaml to relaunch", title="Relaunch")
        return
    name = run_dir.name.split("-", 1)[1] if "-" in run_dir.name else run_dir.name
    screen.app.push_screen(LaunchScreen(preset, name=name))


class RunsScreen(BaseScreen):
    """The run list: open, filter, mark for compare, delete."""

    HELP = (
        "Every run folder under the results dir, updated live. Runs started "
        "elsewhere (a shell, a cluster node) appear by themselves."
    )
    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("s", "snapshots", "Snapshots"),
        Binding("space", "mark", "Mark"),
        Binding(
            "c", "compare", "Compare", show=False
        ),  # the info line offers it once runs are marked
        Binding("l", "launch", "Launch"),
        Binding("L", "relaunch", "Relaunch…", show=False),
        Binding("p", "presets", "Presets"),
        Binding("d", "delete", "Delete"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: set[str] = set()
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: name, status, device…  (/)", id="runs-filter")
        yield RunsTable(flex="Name", min_flex=12, id="runs-table")
        yield Static("", id="runs-info", classes="info-line")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(RunsTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width, key=label or "mark")
        table.fit_columns()
        self.query_one("#runs-filter", Input).cursor_blink = not self.app.is_headless
        self.app.runs_changed.subscribe(self, self._rows_changed)
        self.set_interval(15, self._refresh_ages)
        self._rows_changed(self.app.rows)
        table.focus()

    # -- drawing -----------------------------------------------------------------

    def _visible(self, rows: list[RunSummary]) -> list[RunSummary]:
        words = self.filter_text.lower().split()
        if not words:
            return rows
        out = []
        for r in rows:
            hay = f"{r.run_id:05d} {r.name} {r.status} {r.device} {r.precision} {_host(r) or ''}".lower()
            if all(w in hay for w in words):
                out.append(r)
        return out

    def _cells(self, r: RunSummary, now: float) -> tuple:
        app = self.app
        dev = f"{r.device}×{r.world_size}" if r.info is not None else fmt.DASH
        mark = (
            Text("●", style=f"bold {app.current_theme.accent}")
            if r.path.name in self.marked
            else ""
        )
        best = Text(fmt.psnr(r.best_psnr), style="bold") if r.best_psnr is not None else fmt.DASH
        return (
            mark,
            f"{r.run_id:05d}",
            r.name,
            status_text(app, r.status, r.exit_code),
            fmt.steps(r.step, r.total_steps),
            best,
            fmt.psnr(r.last_psnr),
            dev,
            r.precision if r.info is not None else fmt.DASH,
            fmt.ms(r.ms_per_step),
            fmt.age(r.started, now),
        )

    def _rows_changed(self, rows: list[RunSummary]) -> None:
        now = self.app.clock()
        visible = self._visible(rows)
        # Newest first: the run you just started is at the top.
        visible = list(reversed(visible))
        table = self.query_one(RunsTable)
        table.sync([(r.path.name, self._cells(r, now)) for r in visible])
        self._update_info(rows, visible)

    def _update_info(self, rows: list[RunSummary], visible: list[RunSummary]) -> None:
        info = self.query_one("#runs-info", Static)
        if not self.app.rows_loaded:
            info.update(f"reading {self.app.results_dir} …")
            return
        running = sum(1 for r in rows if r.status == "running")
        parts = [f"{len(rows)} run{'s' if len(rows) != 1 else ''}"]
        if running:
            parts.append(f"{running} running")
        if len(visible) != len(rows):
            parts.append(f"{len(visible)} shown")
        if self.marked:
            parts.append(f"{len(self.marked)} marked (c: compare)")
        parts.append(f"results: {self.app.results_dir}")
        if not rows:
            parts.append("no runs yet — press l to launch one, p for presets")
        info.update("  ·  ".join(parts))

    def _refresh_ages(self) -> None:
        self._rows_changed(self.app.rows)

    # -- actions -----------------------------------------------------------------

    def selected(self) -> RunSummary | None:
        key = self.query_one(RunsTable).current_key()
        return next((r for r in self.app.rows if r.path.name == key), None)

    @on(RunsTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        from .dashboard import DashboardScreen

        row = self.selected()
        if row:
            self.app.push_screen(DashboardScreen(row.path))

    def action_snapshots(self) -> None:
        from .snapshots import SnapshotsScreen

        row = self.selected()
        if row:
            self.app.push_screen(SnapshotsScreen(row.path))

    def action_mark(self) -> None:
        row = self.selected()
        if not row:
            return
        # The cursor stays on the run just (un)marked; the info line says what changed.
        self.marked.symmetric_difference_update({row.path.name})
        self._rows_changed(self.app.rows)

    def action_compare(self) -> None:
        from .compare import CompareScreen

        paths = [r.path for r in self.app.rows if r.path.name in self.marked]
        if len(paths) < 2:
            row = self.selected()
            hint = "mark two or more runs with space, then press c"
            if row and len(paths) == 1 and row.path not in paths:
                paths.append(row.path)
            else:
                self.notify(hint, title="Compare")
                return
        self.app.push_screen(CompareScreen(paths))

    def action_launch(self) -> None:
        from .launch import LaunchScreen

        self.app.push_screen(LaunchScreen())

    def action_relaunch(self) -> None:
        row = self.selected()
        if row:
            relaunch(self, row.path)

    def action_presets(self) -> None:
        from .presets import PresetsScreen

        self.app.push_screen(PresetsScreen())

    def action_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_clear_filter(self) -> None:
        inp = self.query_one("#runs-filter", Input)
        inp.value = ""
        self.query_one(RunsTable).focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._rows_changed(self.app.rows)

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    def action_delete(self) -> None:
        row = self.selected()
        if not row:
            return
        if row.status == "running":
            where = "" if is_local(row) else f" on {_host(row)}"
            self.notify(
                f"{row.path.name} is running{where}; stop it first (open it, then x)",
                title="Not deleted",
                severity="warning",
            )
            return
        body = (
            f"Delete {row.path}?\n\nThis removes the whole run folder: metrics, log, "
            f"snapshots and samples. It cannot be undone."
        )

        def done(yes: bool | None) -> None:
            if yes:
                self.marked.discard(row.path.name)
                self.delete_run(row.path)

        self.app.push_screen(ConfirmModal("Delete run", body, yes="Delete", danger=True), done)

    @work(thread=True, exclusive=True, group="delete", exit_on_error=False, name="delete")
    def delete_run(self, path: Path) -> None:
        try:
            shutil.rmtree(path)
        except OSError as e:
            self.app.call_from_thread(
                self.app.push_screen, ErrorModal("Delete failed", f"{path}: {e.strerror or e}")
            )
            return
        self.app.forget_run(path)
        self.app.rescan()
        self.app.call_from_thread(self.notify, f"deleted {path.name}", title="Delete")


def _host(r: RunSummary) -> str | None:
    return r.info.host if r.info is not None else None
