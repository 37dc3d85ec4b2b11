"""Sweeps: every sweep with its progress; a sweep's points as a table, one column per grid key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from n2n_core import formatting as fmt
from n2n_core.errors import UserError
from n2n_core.runs.layout import RunPaths
from n2n_core.sweeps.view import PointView, SweepView

from ..models.procs import run_core, start_detached
from ..models.sorting import SortOrder
from ..models.sweepindex import SweepIndex
from ..widgets.charts import Chart, Line
from ..widgets.charts.chart import theme_colour
from ..widgets.common import Col, ConfirmModal, ErrorModal, RunsTable
from ..widgets.common.status import status_text
from .base import BaseScreen

# Narrow terminals drop columns in the stated order (1 first); Name and Run take what a
# wide one leaves.
SWEEP_COLUMNS = (
    Col("id", "ID", 5),
    Col("name", "Name", 24, min=10, grow=48),
    Col("status", "Status", 13),
    Col("progress", "Done", 9),
    Col("running", "Running", 7, drop=2),
    Col("failed", "Failed", 6, drop=3),
    Col("executor", "Executor", 8, drop=1),
    Col("created", "Created", 9, drop=1),
)
POINT_TAIL = (
    Col("status", "Status", 13),
    Col("step", "Step", 11, min=9),
    Col("best", "Best", 6),
    Col("last", "Last", 6, drop=2),
    Col("job", "Job", 14, drop=1),
    Col("run", "Run", 22, min=14, grow=-1),
)


def _sweep_value(r: SweepView, col: str):
    return {
        "id": r.key,
        "name": r.name,
        "status": r.status,
        "progress": r.done / r.total if r.total else 0,
        "running": r.running,
        "failed": r.failed,
        "executor": r.executor,
        "created": r.created,
    }[col]


def _point_value(p: PointView, col: str):
    if col.startswith("grid:"):
        return p.params.get(col[5:])
    return {
        "#": p.index,
        "status": p.status,
        "step": p.step,
        "best": p.best_psnr,
        "last": p.last_psnr,
        "job": p.job or None,
        "run": p.key,
    }[col]


class SweepsScreen(BaseScreen):
    """Sweeps above, the chosen sweep's points below; sort either by any column."""

    HELP = (
        "Every sweep under the results dir (n2n-core sweep). Choose one to see its "
        "points: one column per grid key (a search's: per searched key), status, step, "
        "best and last PSNR; a search also shows its best trial, the best so far over "
        "trials (pruned trials marked) and which key mattered. Click a "
        "column header (or press o) to sort by it, again to reverse. enter on a point "
        "opens its dashboard."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("enter", "open", "Open"),
        Binding("o", "sort", "Sort"),
        Binding("x", "cancel_sweep", "Stop sweep"),
        Binding("r", "resume_sweep", "Resume sweep"),
        Binding("tab", "app.focus_next", "Switch table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.index: SweepIndex | None = None
        self.sweeps: list[SweepView] = []
        self.chosen: str | None = None
        self.sweep_order = SortOrder()
        self.point_order = SortOrder()
        self._point_columns: tuple[str, ...] = ()
        self._point_cursor: dict[str, str] = {}  # sweep -> the point its cursor was on
        self._points_of: str | None = None  # the sweep whose points the table shows

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunsTable(id="sweeps-table")
        yield Static("", id="sweeps-info", classes="info-line")
        yield RunsTable(id="points-table")
        yield Static("", id="points-info", classes="info-line")
        yield Static("", id="search-info", classes="info-line")
        yield Chart("best so far", id="search-chart", empty="no trial has ended yet")
        yield Footer()

    def on_mount(self) -> None:
        self.index = SweepIndex(self.app.results_dir)
        self._sweep_headers()
        self.app.runs_changed.subscribe(self, lambda rows: self.refresh_sweeps())
        self.set_interval(max(self.app.poll_interval, 0.5), self.refresh_sweeps)
        self.refresh_sweeps()
        self.query_one("#sweeps-table", RunsTable).focus()

    # -- data ------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="sweeps", exit_on_error=False, name="sweep scan")
    def refresh_sweeps(self) -> None:
        rows = self.index.scan(list(self.app.rows)) if self.index else []
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[SweepView]) -> None:
        self.sweeps = rows
        table = self.query_one("#sweeps-table", RunsTable)
        ordered = self.sweep_order.apply(list(reversed(rows)), _sweep_value)
        table.sync([(r.key, self._sweep_cells(r)) for r in ordered])
        if self.chosen is None and ordered:
            self.chosen = table.current_key() or ordered[0].key
        info = self.query_one("#sweeps-info", Static)
        if not rows:
            # The folder's name is the user's: shown as text, never read as markup.
            info.update(
                Text(
                    f"no sweeps in {self.app.results_dir / 'sweeps'} — start one with "
                    "`n2n-core sweep PRESET --grid KEY=V1,V2` (or `--search tpe --trials N "
                    "--space KEY=DIST`) or from Launch"
                )
            )
        else:
            running = sum(r.status == "running" for r in rows)
            info.update(f"{len(rows)} sweep(s), {running} running")
        self._show_points()

    def _sweep_cells(self, r: SweepView) -> tuple:
        return (
            r.key.split("-", 1)[0],
            Text(r.name),
            status_text(self.app, r.status),
            f"{r.done}/{r.total}",
            str(r.running) if r.running else fmt.DASH,
            Text(str(r.failed), style="bold red") if r.failed else fmt.DASH,
            r.executor,
            fmt.age(r.created, self.app.clock()),
        )

    def current_sweep(self) -> SweepView | None:
        return next((s for s in self.sweeps if s.key == self.chosen), None)

    def _show_points(self) -> None:
        sweep = self.current_sweep()
        table = self.query_one("#points-table", RunsTable)
        columns = ("#",) + tuple(f"grid:{k}" for k in (sweep.grid_keys if sweep else ()))
        columns += tuple(c.key for c in POINT_TAIL)
        if columns != self._point_columns:
            self._point_columns = columns
            self._point_headers(table)
        if sweep is None:
            table.sync([])
            self.query_one("#points-info", Static).update("")
            self._show_search(None)
            return
        points = self.point_order.apply(list(sweep.points), _point_value)
        table.sync([(p.key, self._point_cells(p)) for p in points])
        if self._points_of != sweep.key:  # back to a sweep: its cursor where it was left
            self._points_of = sweep.key
            keys = [p.key for p in points]
            left = self._point_cursor.get(sweep.key)
            table.move_cursor(row=keys.index(left) if left in keys else 0, animate=False)
        msg = f"{sweep.path}: {sweep.status}"
        if sweep.message:
            msg += f" — {sweep.message}"
        self.query_one("#points-info", Static).update(Text(msg))
        self._show_search(sweep)

    def _show_search(self, sweep: SweepView | None) -> None:
        """A search's best trial and importances (text, every size) and its best-so-far
        curve over trials with pruned trials marked (a chart, where there is room)."""
        info = self.query_one("#search-info", Static)
        chart = self.query_one("#search-chart", Chart)
        sv = sweep.search if sweep is not None else None
        self.set_class(sv is not None, "-search")
        if sv is None:
            info.update("")
            return
        text = Text(sv.header() + "\n")
        text.append(sv.best_line(), style="bold")
        text.append("\n" + sv.importance_line())
        if not self.has_class("-short"):
            for line in sv.curve_lines(width=max(10, self.size.width - 56)):
                text.append("\n" + line)
        info.update(text)
        lines = [
            Line(
                [t.trial for t in sv.curve if t.best is not None],
                [t.best for t in sv.curve if t.best is not None],
                theme_colour(self.app, "success"),
                "best so far",
            ),
            Line(
                [t.trial for t in sv.curve if t.status == "finished" and t.value is not None],
                [t.value for t in sv.curve if t.status == "finished" and t.value is not None],
                theme_colour(self.app, "primary"),
                "trial",
                dashed=True,
            ),
        ]
        # Each pruned trial its own dot: pruned values are not joined into a line.
        lines += [
            Line([t.trial], [t.value], theme_colour(self.app, "error"), "pruned")
            for t in sv.curve
            if t.status == "pruned" and t.value is not None
        ]
        chart.border_subtitle = "━ best so far  ╌ each trial  • pruned (dB by trial)"
        chart.set_lines(lines)

    def _point_cells(self, p: PointView) -> tuple:
        best = Text(fmt.psnr(p.best_psnr), style="bold") if p.best_psnr is not None else fmt.DASH
        return (
            str(p.index),
            *(Text(v) for v in p.params_text),
            status_text(self.app, p.status),
            fmt.steps(p.step, p.total_steps),
            best,
            fmt.psnr(p.last_psnr),
            Text(p.job) if p.job else fmt.DASH,
            Text(p.key),
        )

    # -- headers and sorting -----------------------------------------------------------

    def _sweep_headers(self) -> None:
        table = self.query_one("#sweeps-table", RunsTable)
        table.set_columns(
            [replace(c, label=self.sweep_order.label(c.key, str(c.label))) for c in SWEEP_COLUMNS]
        )
        if self.sweeps:
            self._show(self.sweeps)

    def _point_headers(self, table: RunsTable) -> None:
        tail = {c.key: c for c in POINT_TAIL}
        cols = []
        for key in self._point_columns:
            if key == "#":
                col = Col("#", "#", 3)
            elif key.startswith("grid:"):
                col = Col(key, key[5:], max(8, min(len(key) - 5, 20)), min=8)
            else:
                col = tail[key]
            cols.append(replace(col, label=self.point_order.label(key, str(col.label))))
        table.set_columns(cols)

    def _resort_points(self) -> None:
        self._point_headers(self.query_one("#points-table", RunsTable))
        self._show_points()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        column = event.column_key.value or ""
        if event.data_table.id == "sweeps-table":
            self.sweep_order.toggle(column)
            self._sweep_headers()
        else:
            self.point_order.toggle(column)
            self._resort_points()

    def action_sort(self) -> None:
        if self.focused and self.focused.id == "sweeps-table":
            self.sweep_order.next_column([c.key for c in SWEEP_COLUMNS])
            self._sweep_headers()
        else:
            self.point_order.next_column(list(self._point_columns))
            self._resort_points()

    # -- actions -------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#sweeps-table")
    def _sweep_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key else None
        if key and key != self.chosen:
            self.chosen = key
            self._show_points()

    @on(DataTable.RowHighlighted, "#points-table")
    def _point_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key else None
        if key and self._points_of is not None:
            self._point_cursor[self._points_of] = key

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        from .dashboard import DashboardScreen

        if self.focused and self.focused.id == "sweeps-table":
            self.query_one("#points-table", RunsTable).focus()
            return
        sweep = self.current_sweep()
        key = self.query_one("#points-table", RunsTable).current_key()
        point = next((p for p in sweep.points if p.key == key), None) if sweep else None
        if point is None:
            return
        if point.run_dir is None:  # sweep.json names a folder that is not this point's
            self.notify(
                f"point {point.index}: {point.refused}",
                title="Refused",
                severity="error",
                markup=False,
            )
            return
        if not (RunPaths(point.run_dir).run_json).exists():
            self.notify(f"{point.run_dir}: no run folder", severity="warning", markup=False)
            return
        self.app.push_screen(DashboardScreen(point.run_dir))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_cancel_sweep(self) -> None:
        sweep = self.current_sweep()
        if sweep is None:
            return
        if sweep.status not in ("running", "pending", "interrupted"):
            self.notify(f"{sweep.key} is {sweep.status}", title="Nothing to cancel")
            return
        body = (
            f"Stop {sweep.path}?\n\nRunning points stop cleanly (each writes a snapshot); "
            "pending points are not started. `r` resumes it later."
        )

        def done(yes: bool | None) -> None:
            if yes:
                self.cancel_sweep(sweep.path)

        self.app.push_screen(
            ConfirmModal("Stop the sweep?", body, yes="Stop the sweep", no="Keep it running"),
            done,
        )

    @work(thread=True, exclusive=True, group="sweep-cancel", exit_on_error=False, name="cancel")
    def cancel_sweep(self, path: Path) -> None:
        res = run_core(["sweep", "cancel", "--", str(path)], timeout=300)
        if res.ok:
            self.app.call_from_thread(self.notify, res.stdout.strip()[-200:], title="Sweep")
        else:
            self.app.call_from_thread(
                self.app.push_screen, ErrorModal("Cancel failed", res.error_line())
            )
        self.app.rescan()

    def action_resume_sweep(self) -> None:
        sweep = self.current_sweep()
        if sweep is None:
            return
        if sweep.status in ("running", "finished", "failed"):
            self.notify(f"{sweep.key} is {sweep.status}", title="Nothing to resume")
            return
        try:
            started = start_detached(
                ["sweep", "resume", "--", str(sweep.path)], sweep.path / "scheduler.out"
            )
        except (OSError, UserError) as e:
            self.notify(str(e), title="Cannot resume the sweep", severity="error")
            return
        self.app.adopt_child(started)
        self.notify(f"scheduler started for {sweep.key}", title="Sweep")
