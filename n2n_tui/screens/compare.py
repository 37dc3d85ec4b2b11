"""Compare: the PSNR curves of two or more runs on one chart."""

from __future__ import annotations

import threading
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header
from textual.worker import get_current_worker

from .. import formatting as fmt
from ..feed import MetricsFollower, RunFeed
from ..widgets.charts import Chart, ChartLegend, Line
from ..widgets.charts.chart import ROLES, theme_colour
from ..widgets.common import RunsTable
from .base import BaseScreen


class CompareScreen(BaseScreen):
    """Overlaid validation PSNR of several runs (running ones keep growing)."""

    HELP = "Validation PSNR of the marked runs against step, one colour per run."
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("i", "toggle_input", "Input PSNR"),
    ]

    def __init__(self, run_dirs: list[Path]):
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.feeds = [RunFeed(capacity=1024) for _ in self.run_dirs]
        self.show_input = False
        self._drawn: tuple = ()
        self._halt = threading.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        yield ChartLegend(id="cmp-legend")
        yield Chart("validation PSNR (dB)", id="cmp-chart", empty="no validation records yet")
        yield RunsTable(id="cmp-table")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "compare"
        self.sub_title = ", ".join(p.name for p in self.run_dirs)
        table = self.query_one(RunsTable)
        for label, width in (
            ("", 2),
            ("Run", 30),
            ("Best", 7),
            ("@ step", 8),
            ("Last", 7),
            ("Input", 7),
            ("Step", 9),
        ):
            table.add_column(label, width=width, key=label or "colour")
        self.follow()
        self.set_interval(0.5, self.redraw)
        self.call_after_refresh(self.redraw)

    def on_unmount(self) -> None:
        self._halt.set()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False, name="compare")
    def follow(self) -> None:
        worker = get_current_worker()
        followers = [
            MetricsFollower(p / "metrics.jsonl", f)
            for p, f in zip(self.run_dirs, self.feeds, strict=True)
        ]
        while not worker.is_cancelled and not self._halt.is_set():
            more = False
            for fol in followers:
                more |= fol.poll()
            if not more:
                self._halt.wait(2.0)

    def colour(self, i: int) -> str:
        return theme_colour(self.app, ROLES[i % len(ROLES)])

    def redraw(self) -> None:
        key = (tuple(f.version for f in self.feeds), self.show_input)
        if key == self._drawn:
            return
        self._drawn = key
        lines, legend, rows = [], [], []
        xmax = 1.0
        for i, (path, feed) in enumerate(zip(self.run_dirs, self.feeds, strict=True)):
            colour = self.colour(i)
            with feed.lock:
                xs, ys = feed.state.series["psnr"].points()
                ixs, iys = feed.state.series["input_psnr"].points()
            v = feed.copy_values()
            xmax = max(xmax, float(v.step))
            lines.append(Line(xs, ys, colour, label=path.name))
            if self.show_input and ixs:
                lines.append(Line(ixs, iys, colour, label=f"{path.name} input", dashed=True))
            legend.append((f"{path.name} {fmt.psnr(v.best_psnr)}", colour))
            rows.append(
                (
                    path.name,
                    (
                        Text("━━", style=colour),
                        path.name,
                        Text(fmt.psnr(v.best_psnr), style="bold"),
                        fmt.count(v.best_step) if v.best_step is not None else fmt.DASH,
                        fmt.psnr(v.psnr),
                        fmt.psnr(v.input_psnr),
                        fmt.count(v.step),
                    ),
                )
            )
        self.query_one(ChartLegend).show(legend)
        self.query_one(Chart).set_lines(lines, (0.0, xmax))
        self.query_one(RunsTable).sync(rows)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle_input(self) -> None:
        self.show_input = not self.show_input
        self.redraw()
