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

from n2n_core.sysmon import SysRecord, summarize_sys

from .. import formatting as fmt
from ..feed import MetricsFollower, RunFeed
from ..widgets.charts import Chart, ChartLegend, Line
from ..widgets.charts.chart import ROLES, theme_colour
from ..widgets.common import RunsTable
from ..widgets.dashboard.system import pct
from .base import BaseScreen


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
    """Overlaid validation PSNR of several runs (running ones keep growing)."""

    HELP = (
        "Validation PSNR of the marked runs against step, one colour per run; the "
        "system metrics of runs that recorded them. p denoises one image with each "
        "run's newest snapshot and shows them side by side, the same crop in each."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("i", "toggle_input", "Input PSNR"),
        Binding("p", "pictures", "Pictures"),
    ]

    def __init__(self, run_dirs: list[Path]):
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.feeds = [RunFeed(capacity=1024) for _ in self.run_dirs]
        self.show_input = False
        self.last_image = ""
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
            ("Util", 5),
            ("Wait", 5),
            ("Slowest", 15),
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
                        *sys_cells(v.sys),
                    ),
                )
            )
        self.query_one(ChartLegend).show(legend)
        self.query_one(Chart).set_lines(lines, (0.0, xmax))
        self.query_one(RunsTable).sync(rows)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_pictures(self) -> None:
        from ..snapshots import newest_snapshot
        from ..widgets.common import PathModal

        snaps = [(p, newest_snapshot(p)) for p in self.run_dirs]
        missing = [p.name for p, s in snaps if s is None]
        if missing:
            self.notify(f"no snapshot yet in {', '.join(missing)}", title="Pictures")
            return

        def chosen(path: Path | None) -> None:
            if path and not path.is_dir():
                self.last_image = str(path)
                self.denoise(path, [(p, s.path) for p, s in snaps])
            elif path:
                self.notify("choose one image, not a folder", title="Pictures")

        self.app.push_screen(
            PathModal(
                "Denoise with each run",
                "Image to denoise with every run's newest snapshot (written to each run's samples/).",
                self.last_image,
            ),
            chosen,
        )

    @work(thread=True, exclusive=True, group="cmp-pictures", exit_on_error=False, name="infer")
    def denoise(self, image: Path, runs: list[tuple[Path, Path]]) -> None:
        from ..snapshots import denoise_each, infer_out
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
