"""Runs: every run folder under the results dir, live."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Input, Static

from n2n_core import formatting as fmt
from n2n_core.errors import UserError
from n2n_core.runs.folders import delete_run
from n2n_core.runs.info import retag_run, run_tags, set_run_note
from n2n_core.runs.query import RunQuery, read_run_preset
from n2n_core.runs.summary import RunSummary, eval_cell, eval_heading

from ..models.runindex import is_local
from ..models.sorting import SortOrder
from ..widgets.common import Col, ConfirmModal, ErrorModal, InputModal, RunsTable
from ..widgets.common.status import status_text, theme_of
from .base import BaseScreen

# What tells runs apart comes first. A narrow terminal drops columns in the stated order
# (1 first: precision, device, ms/step, tags and note, started, last PSNR), Name shrinks to
# 16 before any drops; a wide one grows Name up to 40 and gives the rest to the note.
COLUMNS = (
    Col("mark", "", 1),
    Col("id", "ID", 5),
    Col("name", "Name", 24, min=16, grow=40),
    Col("status", "Status", 13),
    Col("step", "Step", 11, min=9),
    Col("best", "Best", 6),
    Col("last", "Last", 6, drop=6),
    Col("eval", "Eval", 6),
    Col("device", "Device", 8, drop=2),
    Col("prec", "Prec", 4, drop=1),
    Col("ms", "ms/step", 7, drop=3),
    Col("started", "Started", 9, drop=5),
    Col("tags", "Tags", 14, min=8, drop=4),
    Col("note", "Note", 12, drop=4, grow=-1),
)
SORTABLE = [c.key for c in COLUMNS if c.key != "mark"]


def _value(r: RunSummary, col: str):
    """What a column sorts by: the value, not its text."""
    return {
        "id": r.run_id,
        "name": r.name,
        "status": r.status,
        "device": f"{r.device}×{r.world_size}",
        "prec": r.precision,
        "step": r.step,
        "best": r.best_psnr,
        "last": r.last_psnr,
        "eval": r.eval_psnr,
        "ms": r.ms_per_step,
        "started": r.started,
        "tags": " ".join(run_tags(r.info)) or None,
        "note": (r.info.note if r.info else None) or None,
    }[col]


class RunsScreen(BaseScreen):
    """The run list: open, filter, mark for compare, delete."""

    HELP = (
        "Every run folder under the results dir, updated live. Runs started "
        "elsewhere (a shell, a cluster node) appear by themselves. The filter takes "
        "words, +TAG and KEY=VALUE on any preset key (noise.type=poisson). Click a "
        "column header (or press o) to sort by it, again to reverse. Eval is a run's best "
        "snapshot at one noise level, named in its header: each run's own validation "
        "level, or the level E picks."
    )
    BINDINGS = [
        Binding("enter", "open", "Open"),
        # The footer keeps what a newcomer needs and fits 80 columns; `?` lists every key.
        Binding("s", "snapshots", "Snapshots", show=False),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare", show=False),  # the info line offers it
        Binding("e", "export", "Export", show=False),
        Binding("l", "launch", "Launch"),
        Binding("L", "relaunch", "Relaunch…", show=False),
        Binding("p", "presets", "Presets"),
        Binding("d", "delete", "Delete"),
        Binding("w", "sweeps", "Sweeps"),
        Binding("o", "sort", "Sort", show=False),
        Binding("E", "eval_level", "Eval level", show=False),
        Binding("t", "tag", "Tags", show=False),
        Binding("n", "note", "Note", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: set[str] = set()
        self.filter_text = ""
        self.order = SortOrder()
        self._presets: dict[Path, dict] = {}  # resolved presets never change: read once
        # Cells per run, kept while its row is the same object (the index keeps it so
        # while nothing changed), its age reads the same and the Eval heading is the
        # same: a change in one of 10,000 runs formats one row.
        self._cell_cache: dict[str, tuple[RunSummary, tuple, tuple]] = {}
        self.eval_level: float | None = None  # None: each run's validation level
        self._eval_heading: tuple[str, bool] = ("", False)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="filter: name, status, +tag, noise.type=poisson…  (/)", id="runs-filter"
        )
        yield RunsTable(id="runs-table")
        yield Static("", id="runs-detail", classes="info-line")
        yield Static("", id="runs-info", classes="info-line")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(RunsTable)
        self._headers()
        self.query_one("#runs-filter", Input).cursor_blink = not self.app.is_headless
        self.app.runs_changed.subscribe(self, self._rows_changed)
        self.set_interval(15, self._refresh_ages)
        self._rows_changed(self.app.rows)
        table.focus()

    # -- drawing -----------------------------------------------------------------

    def _visible(self, rows: list[RunSummary]) -> list[RunSummary]:
        query = RunQuery.parse(self.filter_text)
        if not (query.words or query.tags or query.keys):
            return rows
        out = []
        for r in rows:
            hay = f"{r.run_id:05d} {r.name} {r.status} {r.device} {r.precision} {_host(r) or ''}"
            preset = self._preset(r.path) if query.needs_preset else None
            if query.matches(r.path, r.info, hay, preset):
                out.append(r)
        return out

    def _preset(self, path: Path) -> dict:
        if path not in self._presets:
            self._presets[path] = read_run_preset(path)
        return self._presets[path]

    def _headers(self) -> None:
        cols = [replace(c, label=self.order.label(c.key, str(c.label))) for c in COLUMNS]
        self._eval_heading = ("", False)
        self.query_one(RunsTable).set_columns(cols)

    def _eval_header(self, rows: list[RunSummary]) -> bool:
        """Name the level of the Eval column (each cell names it when runs differ)."""
        heading = eval_heading(rows)
        if heading != self._eval_heading:
            self._eval_heading = heading
            level, per_cell = heading
            label = f"Eval {level}" if level else "Eval (level)" if per_cell else "Eval"
            self.query_one(RunsTable).set_label(
                "eval", self.order.label("eval", label), max(len(label), 12 if per_cell else 6)
            )
        return heading[1]

    @on(RunsTable.HeaderSelected)
    def _header(self, event: RunsTable.HeaderSelected) -> None:
        if event.column_key.value in SORTABLE:
            self.order.toggle(event.column_key.value)
            self._headers()
            self._rows_changed(self.app.rows)

    def action_eval_level(self) -> None:
        """Eval at each run's validation level, then at each level some run was evaluated at."""
        levels = sorted({lv for r in self.app.rows for _, lv in r.values.eval_levels()})
        choices: list[float | None] = [None, *levels]
        i = choices.index(self.eval_level) if self.eval_level in choices else 0
        self.eval_level = choices[(i + 1) % len(choices)]
        what = "each run's validation level" if self.eval_level is None else f"{self.eval_level:g}"
        self.notify(f"Eval at {what}", title="Eval level", timeout=2)
        self._rows_changed(self.app.rows)

    def action_sort(self) -> None:
        self.order.next_column(SORTABLE)
        self._headers()
        self._rows_changed(self.app.rows)

    def _cells(self, r: RunSummary, now: float) -> tuple:
        app = self.app
        dev = f"{r.device}×{r.world_size}" if r.info is not None else fmt.DASH
        mark = Text("●", style=f"bold {theme_of(app).accent}") if r.path.name in self.marked else ""
        best = Text(fmt.psnr(r.best_psnr), style="bold") if r.best_psnr is not None else fmt.DASH
        return (
            mark,
            f"{r.run_id:05d}",
            r.name,
            status_text(app, r.status, r.exit_code),
            fmt.steps(r.step, r.total_steps),
            best,
            fmt.psnr(r.last_psnr),
            eval_cell(r, self._eval_heading[1]),
            dev,
            r.precision if r.info is not None else fmt.DASH,
            fmt.ms(r.ms_per_step),
            fmt.age(r.started, now),
            Text(" ".join(run_tags(r.info))),
            Text(" ".join(((r.info.note if r.info else None) or "").split())),
        )

    def _rows_changed(self, rows: list[RunSummary]) -> None:
        now = self.app.clock()
        visible = [r.at_level(self.eval_level) for r in self._visible(rows)]
        # Newest first: the run you just started is at the top.
        visible = self.order.apply(list(reversed(visible)), _value)
        self._eval_header(visible)
        table = self.query_one(RunsTable)
        cache = self._cell_cache
        out = []
        for r in visible:
            hit = cache.get(r.path.name)
            key = (fmt.age(r.started, now), self._eval_heading)
            if hit is None or hit[0] is not r or hit[1] != key:
                hit = cache[r.path.name] = (r, key, self._cells(r, now))
            out.append((r.path.name, hit[2]))
        table.sync(out)
        self._update_info(rows, visible)
        self._update_detail()

    @on(RunsTable.RowHighlighted, "#runs-table")
    def _update_detail(self) -> None:
        """The run under the cursor: its note and tags in full (the table has no room)."""
        row = self.selected()
        box = self.query_one("#runs-detail", Static)
        note = (row.info.note or "").strip() if row and row.info else ""
        tags = " ".join(run_tags(row.info)) if row else ""
        box.display = bool(note or tags)
        if row and (note or tags):
            t = Text(f"{row.path.name}", style="bold")
            if note:
                t.append("  note: ")
                t.append(" ".join(note.split()), style="italic")  # one line, however typed
            if tags:
                t.append(f"  tags: {tags}")
            box.update(t)

    def _update_info(self, rows: list[RunSummary], visible: list[RunSummary]) -> None:
        info = self.query_one("#runs-info", Static)
        if not self.app.rows_loaded:
            unread = getattr(self.app, "rows_unread", 0)
            left = f" ({len(rows):,} read, {unread:,} to go)" if rows else ""
            info.update(Text(f"reading {self.app.results_dir} …{left}"))
            return
        running = sum(1 for r in rows if r.status == "running")
        parts = [f"{len(rows):,} run{'s' if len(rows) != 1 else ''}"]
        if running:
            parts.append(f"{running} running")
        if len(visible) != len(rows):
            parts.append(f"{len(visible)} shown")
        unknown = RunQuery.parse(self.filter_text).unknown_keys()
        if unknown:  # a typo matches no run: say so, as `runs --where` does
            keys = ", ".join(unknown)
            parts.insert(0, f"filter: {keys}: unknown key (not a preset key)")
        if self.marked:
            parts.append(f"{len(self.marked)} marked (c: compare)")
        parts.append(f"results: {self.app.results_dir}")
        parts.append("? every key")
        if not rows:
            parts.append("no runs yet — press l to launch one, p for presets")
        info.update(Text("  ·  ".join(parts)))

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
        self._cell_cache.pop(row.path.name, None)
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

    def action_export(self) -> None:
        """CSV, Markdown and a PNG of the marked runs (or the selected one) to RESULTS/exports/."""
        paths = [r.path for r in self.app.rows if r.path.name in self.marked]
        row = self.selected()
        if not paths and row:
            paths = [row.path]
        if paths:
            self.export(paths)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False, name="export")
    def export(self, paths: list[Path]) -> None:
        from .compare import export_runs

        export_runs(self.app, paths, "runs")

    def action_sweeps(self) -> None:
        from .sweeps import SweepsScreen

        self.app.push_screen(SweepsScreen())

    def action_tag(self) -> None:
        row = self.selected()
        if not row or row.info is None:
            return
        old = run_tags(row.info)

        def done(text: str | None) -> None:
            if text is None:
                return
            new = [t.lstrip("+") for t in text.split()]
            changes = [f"-{t}" for t in old if t not in new] + [f"+{t}" for t in new]
            if changes:
                self.edit_run(row.path, "tags", changes)

        hint = "Space-separated tags (letters, digits, ._:/-); clear the line to remove all."
        self.app.push_screen(InputModal(f"Tags of {row.path.name}", hint, " ".join(old)), done)

    def action_note(self) -> None:
        row = self.selected()
        if not row or row.info is None:
            return

        def done(text: str | None) -> None:
            if text is not None:
                self.edit_run(row.path, "note", text)

        hint = "A note kept in run.json (empty clears it)."
        self.app.push_screen(
            InputModal(f"Note of {row.path.name}", hint, row.info.note or ""), done
        )

    @work(thread=True, group="edit", exit_on_error=False, name="edit run")
    def edit_run(self, path: Path, what: str, value) -> None:
        try:
            if what == "tags":
                retag_run(path, value)
            else:
                set_run_note(path, value)
        except UserError as e:
            self.app.call_from_thread(self.app.push_screen, ErrorModal(f"{what} not saved", str(e)))
            return
        self.app.rescan()

    def action_launch(self) -> None:
        from .launch import LaunchScreen

        self.app.push_screen(LaunchScreen())

    def action_relaunch(self) -> None:
        row = self.selected()
        if row:
            self.app.relaunch(row.path)

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
                markup=False,
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
        # The row is what was; the engine decides under the run's lock what is (a run
        # started elsewhere since, a queued point its scheduler is about to start).
        try:
            delete_run(path)
        except UserError as e:
            self.app.call_from_thread(self.app.push_screen, ErrorModal("Not deleted", str(e)))
            self.app.rescan()
            return
        self.app.forget_run(path)
        self.app.rescan()
        self.app.call_from_thread(self.notify, f"deleted {path.name}", title="Delete")


def _host(r: RunSummary) -> str | None:
    return r.info.host if r.info is not None else None
