"""The dashboard's panels: run header, current values, the four charts, replay bar."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Static

from n2n_core import formatting as fmt
from n2n_core.runs import state as runstate
from n2n_core.runs.info import RunInfo

from ...models.follow import RunFollower
from ..charts import Chart, Line
from ..charts.chart import muted_colour, theme_colour
from ..common.status import status_text, update_if_changed


def progress_bar(frac: float, width: int) -> Text:
    frac = min(max(frac, 0.0), 1.0)
    full = int(frac * width)
    t = Text("━" * full, style="bold")
    if full < width:
        t.append("╺" + "━" * (width - full - 1), style="dim")
    return t


class RunHeader(Static):
    """Name, status, where it runs, its note; progress, time and ETA. Two lines, each cut
    to the width (never wrapped into a third)."""

    def show(
        self,
        title: str,
        status: str,
        info: RunInfo | None,
        v: runstate.RunValues,
        now: float,
        note: str = "",
        replayed: bool = False,
    ) -> None:
        """``now``: the wall clock, or in a replay the replayed moment (``replayed``: the
        run is shown as it was then, so its end is not known yet)."""
        app = self.app
        info = info or RunInfo()
        total = info.total_steps
        width = self.content_size.width or 80
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(title, style="bold")
        t.append("  ")
        t.append_text(status_text(app, status, info.exit_code))
        if info.device:
            t.append(f"   {info.device}×{info.world_size or 1}  {info.precision or ''}")
        if info.host:
            t.append(f"  @{info.host}", style="dim")
        if info.note and info.note.strip():
            t.append("  “" + " ".join(info.note.split()) + "”", style="italic")
        t.truncate(width, overflow="ellipsis")
        t.append("\n")
        # The progress bar takes what the numbers leave, so the ETA is never cut off.
        rest = Text()
        if total:
            frac = v.step / total if total else 0
            rest.append(f"  step {v.step:,} / {total:,}  {frac:6.1%}")
        else:
            rest.append(f"step {v.step:,}")
        rest.append_text(time_text(status, info, v, now, replayed))
        if status == "running":
            rest.append(f"   ETA {fmt.duration(v.remaining_s(total, now))}")
        if note:
            rest.append(f"   {note}", style="italic")
        bar = min(40, max(width - rest.cell_len, 0)) if total else 0
        if total:
            t.append_text(progress_bar(v.step / total, bar))
        rest.truncate(max(width - bar, 1), overflow="ellipsis")
        t.append_text(rest)
        update_if_changed(self, t)


def time_text(
    status: str, info: RunInfo, v: runstate.RunValues, now: float, replayed: bool = False
) -> Text:
    """``elapsed 2m 03s``; after a stop and a resume both clocks: ``trained 2m 03s · wall
    4m 10s`` (training time without the stopped gap, wall time since the run started)."""
    started = info.started
    if started is None:
        return Text()
    ended = None if replayed else info.ended
    end = ended if ended is not None and status != "running" else None
    if end is None and status == "running":
        end = now
    if end is None:
        return Text()
    # Training time: a stop and a later resume leave their gap out.
    took = v.elapsed_s(end)
    wall = end - started
    if took is None:
        return Text(f"   elapsed {fmt.duration(wall)}")
    if v.sessions > 1:
        return Text(f"   trained {fmt.duration(took)} · wall {fmt.duration(wall)}")
    return Text(f"   elapsed {fmt.duration(took)}")


class RunValues(Static):
    """Current values in one row: loss, PSNR (best), input PSNR and gain, lr, ms/step."""

    def show(self, v: runstate.RunValues) -> None:
        app = self.app
        cells = []
        label = muted_colour(app)

        def cell(name: str, value: str, style: str = "bold") -> Text:
            t = Text(f"{name} ", style=label)
            t.append(value, style=style)
            return t

        cells.append(cell("loss", fmt.num(v.loss)))
        psnr = fmt.psnr(v.psnr)
        cells.append(cell("PSNR", psnr, f"bold {theme_colour(app, 'primary')}"))
        best = fmt.psnr(v.best_psnr)
        if v.best_step is not None:
            best += f" @{fmt.count(v.best_step)}"
        cells.append(cell("best", best))
        cells.append(cell("input", fmt.psnr(v.input_psnr)))
        if v.psnr is not None and v.input_psnr is not None:
            gain = v.psnr - v.input_psnr
            cells.append(cell("gain", f"{gain:+.2f} dB", f"bold {theme_colour(app, 'success')}"))
        if v.colour_shift is not None:
            cells.append(
                cell("colour shift", fmt.colour_shift(v.colour_shift, v.colour_shift_worst))
            )
        cells.append(cell("lr", fmt.num(v.lr)))
        cells.append(cell("ms/step", fmt.ms(v.ms_per_step)))
        if v.dataset:
            cells.append(cell("val", v.dataset, ""))
        update_if_changed(self, Text("   ").join(cells))


class MetricCharts(Grid):
    """Loss, PSNR (with input PSNR as a dashed reference), lr and ms/step against step."""

    DEFAULT_CSS = """
    MetricCharts { grid-size: 2 2; grid-gutter: 0 1; height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Chart("loss", log_y=True, id="chart-loss")
        yield Chart("PSNR (dB)", id="chart-psnr", empty="no validation yet")
        yield Chart("learning rate", id="chart-lr")
        yield Chart("ms / step", id="chart-ms")

    def draw(self, feed: RunFollower, total: int | None) -> None:
        app = self.app
        with feed.lock:
            series = feed.state.series
            loss = series["loss"].points()
            psnr = series["psnr"].points()
            inp = series["input_psnr"].points()
            lr = series["lr"].points()
            ms = series["ms_per_step"].points()
            v = feed.state.values
            step = v.step
            last_psnr, last_inp = v.psnr, v.input_psnr
        x_range = (0.0, float(max(step, 1)))
        c = self.query_one("#chart-loss", Chart)
        c.set_lines([Line(*loss, theme_colour(app, "warning"))], x_range)
        lines = []
        if inp[0]:
            lines.append(Line(*inp, muted_colour(app), label="input", dashed=True))
        lines.append(Line(*psnr, theme_colour(app, "primary"), label="denoised"))
        c = self.query_one("#chart-psnr", Chart)
        c.border_subtitle = (
            f"{fmt.psnr(last_psnr)} dB  ┄ input {fmt.psnr(last_inp)}"
            if last_psnr is not None
            else ""
        )
        c.set_lines(lines, x_range)
        self.query_one("#chart-lr", Chart).set_lines(
            [Line(*lr, theme_colour(app, "accent"))], x_range
        )
        self.query_one("#chart-ms", Chart).set_lines(
            [Line(*ms, theme_colour(app, "success"))], x_range
        )


class ReplayBar(Static):
    """Replay position, speed and state."""

    def show(
        self, pos: float, t0: float | None, t1: float | None, speed: float, paused: bool, done: bool
    ) -> None:
        t = Text()
        state = "done" if done else ("paused" if paused else "playing")
        icon = {"done": "■", "paused": "❚❚", "playing": "▶"}[state]
        t.append(f" {icon} replay {state}", style="bold")
        t.append(f"   speed {speed:g}×" if speed > 0 else "   final state")
        if t0 is not None and t1 is not None and t1 > t0:
            frac = (pos - t0) / (t1 - t0)
            times = f"  {fmt.duration(pos - t0)} / {fmt.duration(t1 - t0)}"
            # The bar takes what the words leave (at most 30): the times are never cut.
            room = (self.content_size.width or 80) - t.cell_len - 3 - len(times)
            if room >= 5:
                t.append("   ")
                t.append_text(progress_bar(frac, min(30, room)))
            t.append(times)
        update_if_changed(self, t)
