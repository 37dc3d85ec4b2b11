"""Compare: any metric of two or more runs on one chart, their config diff and evaluations."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import ContentSwitcher, Footer, Header, Static
from textual.worker import get_current_worker

from n2n_core import formatting as fmt
from n2n_core.config.diff import ABSENT, flat_keys, preset_diff, show_value
from n2n_core.config.loader import read_preset_data
from n2n_core.engine.sysmon import summarize_sys
from n2n_core.errors import UserError
from n2n_core.runs.curves import METRICS, PANELS, X_LABELS, ema
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.records import SysRecord
from n2n_core.runs.summary import RunSummary, eval_cell, eval_heading, run_val_level

from ..models.curveset import RunCurves
from ..widgets.charts import Chart, ChartLegend, Line
from ..widgets.charts.chart import ROLES, theme_colour
from ..widgets.common import Col, RunsTable
from ..widgets.dashboard.system import pct
from .base import BaseScreen

VIEWS = ("cmp-table", "cmp-config", "cmp-eval")
VIEW_NAMES = {"cmp-table": "runs", "cmp-config": "config diff", "cmp-eval": "evaluation"}


def sys_cells(rec: SysRecord | None) -> tuple[str, str, str]:
    """Mean device utilisation, the longest data wait, the slowest rank's ms/step."""
    if rec is None:
        return fmt.DASH, fmt.DASH, fmt.DASH
    s = summarize_sys(rec)
    slowest = fmt.DASH
    if s.slowest_rank is not None:
        slowest = f"{fmt.ms(s.slowest_ms)} ms (r{s.slowest_rank})"
    return pct(s.util_pct), pct(s.data_wait, 100), slowest


class CompareScreen(BaseScreen):
    """Overlaid curves of several runs (running ones keep growing)."""

    HELP = (
        "The marked runs on one chart, one colour per run. m: next metric (loss is "
        "EMA-smoothed on a log scale), t: x by step or by wall time, i: noisy-input "
        "PSNR, v: runs / config diff / evaluation matrices, e: export CSV, Markdown "
        "and a PNG of the curves to RESULTS/exports/. p: denoise one image with each "
        "run's newest snapshot, side by side, the same crop in each."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("m", "next_metric", "Metric"),
        Binding("t", "toggle_x", "Step/time"),
        Binding("i", "toggle_input", "Input"),
        Binding("v", "next_view", "View"),
        Binding("e", "export", "Export"),
        Binding("p", "pictures", "Pictures"),
    ]

    def __init__(self, run_dirs: list[Path]):
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.feeds = [RunCurves(p) for p in self.run_dirs]
        self.levels = [run_val_level(p) for p in self.run_dirs]  # where each run's Eval is
        self.metric = "psnr"
        self.x = "step"
        self.show_input = False
        self.last_image = ""
        self._drawn: tuple = ()
        self._halt = threading.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        yield ChartLegend(id="cmp-legend")
        yield Chart("", id="cmp-chart", empty="no records of this metric yet")
        with ContentSwitcher(initial="cmp-table", id="cmp-views"):
            yield RunsTable(id="cmp-table")
            with VerticalScroll(id="cmp-config"):
                yield Static("", id="cmp-config-body")
            yield VerticalScroll(id="cmp-eval")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "compare"
        self.sub_title = ", ".join(p.name for p in self.run_dirs)
        # A narrow terminal drops the system numbers first, then shift, @ step, last,
        # input and step; Run shrinks to 20 before any go.
        self.query_one(RunsTable).set_columns(
            [
                Col("colour", "", 2),
                Col("Run", "Run", 30, min=20, grow=40),
                Col("Best", "Best", 7),
                Col("@ step", "@ step", 8, drop=3),
                Col("Last", "Last", 7, drop=4),
                Col("Shift", "Shift", 6, drop=2),
                Col("Input", "Input", 7, drop=5),
                Col("Eval", "Eval", 7),
                Col("Step", "Step", 9, drop=6),
                Col("Util", "Util", 5, drop=1),
                Col("Wait", "Wait", 5, drop=1),
                Col("Slowest", "Slowest", 15, drop=1),
            ]
        )
        eval_row = self.query_one("#cmp-eval", VerticalScroll)
        for i, _ in enumerate(self.run_dirs):
            eval_row.mount(Static("", id=f"cmp-eval-{i}", classes="cmp-eval-run"))
        self.query_one("#cmp-config-body", Static).update(self._config_diff())
        self.follow()
        self.set_interval(0.5, self.redraw)
        self.call_after_refresh(self.redraw)

    def on_unmount(self) -> None:
        self._halt.set()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False, name="compare")
    def follow(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled and not self._halt.is_set():
            more = False
            for feed in self.feeds:
                more |= feed.poll().more
            if not more:
                self._halt.wait(2.0)

    def colour(self, i: int) -> str:
        return theme_colour(self.app, ROLES[i % len(ROLES)])

    # -- drawing -----------------------------------------------------------------

    def _chart_title(self) -> str:
        m = METRICS[self.metric]
        extras = [e for e, on in (("EMA", m.smooth), ("log", m.log)) if on]
        more = f" ({', '.join(extras)})" if extras else ""
        return f"{m.label}{more} vs {X_LABELS[self.x]}"

    def redraw(self) -> None:
        key = (tuple(f.version for f in self.feeds), self.show_input, self.metric, self.x)
        if key == self._drawn:
            return
        self._drawn = key
        metric = METRICS[self.metric]
        lines, legend, rows = [], [], []
        summaries: list[RunSummary] = []
        xmax = 0.0
        for i, (path, feed) in enumerate(zip(self.run_dirs, self.feeds, strict=True)):
            colour = self.colour(i)
            xs, ys = feed.curve(self.metric, self.x)
            if metric.smooth:
                ys = ema(ys)
            if xs:
                xmax = max(xmax, xs[-1])
            lines.append(Line(xs, ys, colour, label=path.name))
            if self.show_input and metric.companion:
                cx, cy = feed.curve(metric.companion, self.x)
                if cx:
                    lines.append(Line(cx, cy, colour, label=f"{path.name} input", dashed=True))
            v = feed.copy_values()
            summaries.append(RunSummary.of(path, None, v, self.levels[i]))
            legend.append((f"{path.name} {fmt.psnr(v.best_psnr)}", colour))
            rows.append(
                (
                    path.name,
                    (
                        Text("━━", style=colour),
                        Text(path.name),
                        Text(fmt.psnr(v.best_psnr), style="bold"),
                        fmt.count(v.best_step) if v.best_step is not None else fmt.DASH,
                        fmt.psnr(v.psnr),
                        fmt.colour_shift(v.colour_shift, None),
                        fmt.psnr(v.input_psnr),
                        summaries[-1],
                        fmt.count(v.step),
                        *sys_cells(v.sys),
                    ),
                )
            )
            self.query_one(f"#cmp-eval-{i}", Static).update(_eval_table(path.name, v.evals, colour))
        chart = self.query_one(Chart)
        chart.border_title = self._chart_title()
        chart.log_y = metric.log
        chart.set_lines(lines, (0.0, max(xmax, 1e-9)))
        self.query_one(ChartLegend).show(legend)
        level, per_cell = eval_heading(summaries)
        table = self.query_one(RunsTable)
        label = f"Eval {level}" if level else "Eval (level)" if per_cell else "Eval"
        table.set_label("Eval", label, max(len(label), 12 if per_cell else 7))
        rows = [
            (key, tuple(eval_cell(c, per_cell) if isinstance(c, RunSummary) else c for c in cells))
            for key, cells in rows
        ]
        table.sync(rows)

    def _config_diff(self) -> Table | Text:
        presets = []
        for p in self.run_dirs:
            try:
                presets.append(read_preset_data(RunPaths(p).preset))
            except UserError as e:
                return Text(f"config diff unavailable: {e}")
        keys: dict[str, None] = {}
        for other in presets[1:]:
            keys.update(dict.fromkeys(k for k, _, _ in preset_diff(presets[0], other)))
        if not keys:
            return Text("the runs' presets are identical")
        flat = [flat_keys(p) for p in presets]
        t = Table(title="preset keys that differ", header_style="bold", expand=True)
        t.add_column("key", no_wrap=True)
        for i, p in enumerate(self.run_dirs):
            t.add_column(Text(p.name, style=self.colour(i)))
        for k in keys:
            t.add_row(Text(k), *(Text(show_value(f.get(k, ABSENT))) for f in flat))
        return t

    # -- actions -----------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_pictures(self) -> None:
        from ..models.snapshots import KIND_NAMES, newest_snapshot
        from ..widgets.common import PathModal

        # One kind of model for every run: weights, or ONNX models where all have one.
        kind = ".safetensors"
        snaps = [(p, newest_snapshot(p, kind)) for p in self.run_dirs]
        if any(s is None for _, s in snaps):
            onnx = [(p, newest_snapshot(p, ".onnx")) for p in self.run_dirs]
            if all(s is not None for _, s in onnx):
                kind, snaps = ".onnx", onnx
        missing = [p.name for p, s in snaps if s is None]
        if missing:
            self.notify(f"no snapshot yet in {', '.join(missing)}", title="Pictures")
            return
        which = ", ".join(f"{p.name}: {s.name}" for p, s in snaps if s is not None)

        def chosen(path: Path | None) -> None:
            if path and not path.is_dir():
                self.last_image = str(path)
                self.denoise(path, [(p, s.path) for p, s in snaps])
            elif path:
                self.notify("choose one image, not a folder", title="Pictures")

        self.app.push_screen(
            PathModal(
                "Denoise with each run",
                f"Image to denoise with every run's newest {KIND_NAMES[kind]}, the same kind "
                f"for all ({which}); written to each run's samples/.",
                self.last_image,
            ),
            chosen,
        )

    @work(thread=True, exclusive=True, group="cmp-pictures", exit_on_error=False, name="infer")
    def denoise(self, image: Path, runs: list[tuple[Path, Path]]) -> None:
        from ..models.snapshots import denoise_each, infer_out
        from .pictures import PicturesScreen

        jobs = [(snap, infer_out(run, image, snap)) for run, snap in runs]
        error = denoise_each(image, jobs)
        if error:
            self.app.call_from_thread(self.notify, error, title="Pictures", severity="error")
            return
        items = [(f"input · {image.name}", image)]
        items += [
            (f"{run.name} · {snap.name}", out)
            for (run, _), (snap, out) in zip(runs, jobs, strict=True)
        ]
        self.app.call_from_thread(
            self.app.push_screen, PicturesScreen(f"{image} denoised by each run", items)
        )

    def action_toggle_input(self) -> None:
        self.show_input = not self.show_input
        self.redraw()

    def action_next_metric(self) -> None:
        names = [m.name for m in PANELS]
        self.metric = names[(names.index(self.metric) + 1) % len(names)]
        self.redraw()

    def action_toggle_x(self) -> None:
        self.x = "time" if self.x == "step" else "step"
        self.redraw()

    def action_next_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        view = VIEWS[(VIEWS.index(switcher.current or VIEWS[0]) + 1) % len(VIEWS)]
        switcher.current = view
        self.notify(VIEW_NAMES[view], title="View", timeout=1.5)

    def action_export(self) -> None:
        self.export(self.run_dirs, self.x)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False, name="export")
    def export(self, run_dirs: list[Path], x: str) -> None:
        export_runs(self.app, run_dirs, "compare", x)


def export_runs(app, run_dirs: list[Path], what: str, x: str = "step") -> None:
    """Write CSV, Markdown and a PNG of ``run_dirs`` to RESULTS/exports/ (from a worker)."""
    from n2n_core.runs.export import export_bundle

    stem = f"{what}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        files, why_no_plot = export_bundle(run_dirs, app.results_dir / "exports", stem, x)
    except UserError as e:
        app.call_from_thread(app.notify, str(e), title="Export failed", severity="error")
        return
    body = "\n".join(str(f) for f in files)
    if why_no_plot:
        body += f"\nno picture: {why_no_plot}"
    app.call_from_thread(
        app.notify, body, title="Exported", severity="warning" if why_no_plot else "information"
    )


def _eval_table(name: str, evals, colour: str) -> Group | Text:
    if not evals:
        return Text(f"{name}: not evaluated yet (n2n-core evaluate RUN_DIR --dataset-dir D)")
    # The noisy input is every cell's (validate's and evaluate's alike): its own column,
    # not a "noisy" baseline that only some evaluations asked for.
    names = [n for n in dict.fromkeys(b for e in evals for b in e.baseline_names) if n != "noisy"]
    t = Table(title=Text(name, style=colour), header_style="bold", expand=True)
    for col in ("snapshot", "data", "level", "net", "input", "shift", *names):
        t.add_column(col, justify="left" if col in ("snapshot", "data") else "right")
    for e in evals:
        snap = (e.snapshot or "?").removesuffix(".safetensors") + (" *" if e.best else "")
        t.add_row(
            Text(snap),
            Text(Path(e.dataset or "?").name or e.dataset or "?"),
            fmt.DASH if e.level is None else f"{e.level:g}",
            Text(fmt.psnr(e.psnr), style="bold"),
            fmt.psnr(e.input_psnr),
            fmt.colour_shift(e.colour_shift, None),
            *(fmt.psnr(e.baseline(n)) for n in names),
        )
    return Group(t)
