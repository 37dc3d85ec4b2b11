"""Headless views of run folders: the ``runs`` table and ``replay`` (rich)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from n2n_core import formatting as fmt
from n2n_core.errors import printable
from n2n_core.runs.folders import resolve_run_dir
from n2n_core.runs.info import run_tags
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.records import EventRecord, Record, ValRecord, read_metrics
from n2n_core.runs.state import RunState
from n2n_core.runs.summary import (
    RunSummary,
    eval_cell,
    eval_heading,
    replay_records,
    summarize_run,
)
from n2n_core.sweeps.view import SweepView, search_param

STATUS_STYLE = {
    "running": "bold cyan",
    "finished": "green",
    "failed": "bold red",
    "stopped": "yellow",
    "interrupted": "magenta",
    "queued": "dim",
    "pending": "dim",
    "cancelled": "yellow",
    "refused": "bold red",
    "pruned": "yellow",
}


def data(value: object, style: str = "") -> Text:
    """A value read from a file or a folder name (a run's name, a param, a job state, a
    message) as a table shows it: never markup, and its control characters escaped
    (``\\x1b``) so that no escape sequence in it reaches the terminal."""
    return Text(printable(value if isinstance(value, str) else str(value)), style=style)


class ColumnsTable:
    """A table as aligned columns under a bold header, no box: what ``runs`` prints.

    Takes ``add_column``/``add_row`` like Rich's Table, but lays out in one pass over
    plain widths and prints as one Text: Rich's Table measures every cell and takes
    ~7 s for 10,000 runs, this ~0.2 s. Cells are str or Text (styles kept); a value
    from a file is passed through :func:`data` by the caller, as for any table.
    """

    GAP = "  "

    def __init__(self, title: Text | str = "", header_style: str = "bold") -> None:
        self.title, self.header_style = title, header_style
        self.columns: list[tuple[str, str]] = []
        self.rows: list[list[Text]] = []

    def add_column(self, name: str, justify: str = "left") -> None:
        self.columns.append((name, justify))

    def add_row(self, *cells: str | Text) -> None:
        self.rows.append([c if isinstance(c, Text) else Text(c) for c in cells])

    def __rich_console__(self, console: Console, options) -> Iterator[Text]:
        widths = [len(name) for name, _ in self.columns]
        cell_lens = [[_cell_len(c) for c in row] for row in self.rows]
        for lens in cell_lens:
            for i, n in enumerate(lens):
                if n > widths[i]:
                    widths[i] = n
        lines: list[Text] = []
        if self.title:
            lines.append(self.title if isinstance(self.title, Text) else Text(self.title))
        header = Text(style=self.header_style)
        for i, (name, justify) in enumerate(self.columns):
            header.append(self.GAP if i else "")
            header.append(self._pad(name, widths[i], justify))
        lines.append(header)
        for row, lens in zip(self.rows, cell_lens, strict=True):
            line = Text()
            for i, c in enumerate(row):
                pad = widths[i] - lens[i]
                right = self.columns[i][1] == "right"
                line.append(self.GAP if i else "")
                if right and pad:
                    line.append(" " * pad)
                line.append_text(c)
                if not right and pad and i + 1 < len(row):
                    line.append(" " * pad)
            lines.append(line)
        # A terminal narrower than the table cuts each line (with …), never wraps it.
        width = options.max_width
        for ln in lines:
            ln.rstrip()
            ln.truncate(width, overflow="ellipsis")
        out = Text("\n").join(lines)
        out.no_wrap = True
        yield out

    @staticmethod
    def _pad(s: str, width: int, justify: str) -> str:
        return s.rjust(width) if justify == "right" else s.ljust(width)


def _cell_len(t: Text) -> int:
    p = t.plain
    return len(p) if p.isascii() else t.cell_len


def _console() -> Console:
    # Piped output (a log, `| less`) is not cut to 80 columns.
    c = Console()
    return c if c.is_terminal else Console(width=160)


def runs_table(runs: list[RunSummary], results_dir, console: Console | None = None) -> None:
    console = console or _console()
    if not runs:
        console.print(data(f"no runs in {results_dir}"))
        return
    t = ColumnsTable(title=data(f"runs in {results_dir}"), header_style="bold")
    # One noise level per score, named in the header (or in each cell where runs differ).
    level, per_cell = eval_heading(runs)
    eval_col = f"eval dB {level}" if level else "eval dB (level)" if per_cell else "eval dB"
    for col in (
        "id",
        "name",
        "status",
        "device",
        "step",
        "best dB",
        "last dB",
        "shift",
        eval_col,
        "ms/step",
        "started",
    ):
        t.add_column(
            col,
            justify="right"
            if col in ("id", "step", "best dB", "last dB", "shift", eval_col, "ms/step")
            else "left",
        )
    tagged = any(run_tags(r.info) for r in runs)
    if tagged:
        t.add_column("tags")
    for r in runs:
        total = f"/{r.total_steps}" if r.total_steps else ""
        cells = [
            f"{r.run_id:05d}",
            data(r.name),  # a folder name is data, never markup nor a terminal command
            data(r.status, STATUS_STYLE.get(r.status, "")),
            data(f"{r.device} x{r.world_size}"),
            f"{r.step}{total}",
            fmt.psnr(r.best_psnr),
            fmt.psnr(r.last_psnr),
            fmt.colour_shift(r.colour_shift, None),  # the last validation's, beside its PSNR
            eval_cell(r, per_cell),
            "—" if r.ms_per_step is None else f"{r.ms_per_step:.1f}",
            fmt.age(r.started, time.time()),
        ]
        if tagged:
            cells.append(data(" ".join(run_tags(r.info))))
        t.add_row(*cells)
    console.print(t)


def _summary_table(state: RunState, total: int | None, name: str) -> Table:
    agg = state.values
    t = Table(title=data(name), show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("step", f"{agg.step}" + (f" / {total}" if total else ""))
    t.add_row("loss", "—" if agg.loss is None else f"{agg.loss:.5f}")
    t.add_row("lr", "—" if agg.lr is None else f"{agg.lr:.2e}")
    t.add_row("ms/step", "—" if agg.ms_per_step is None else f"{agg.ms_per_step:.1f}")
    t.add_row("PSNR last / best", f"{fmt.psnr(agg.psnr)} / {fmt.psnr(agg.best_psnr)} dB")
    t.add_row("noisy input PSNR", f"{fmt.psnr(agg.input_psnr)} dB")
    return t


def replay(run_dir: str | Path, speed: float = 0.0, console: Console | None = None) -> int:
    """Play a run's metrics log; ``speed`` 0 shows the final state at once."""
    console = console or _console()
    path = resolve_run_dir(run_dir)
    summary = summarize_run(path)
    records = read_metrics(RunPaths(path).metrics)
    state = RunState(capacity=None)
    name = f"{path.name} ({summary.status})"
    if speed <= 0:
        state.feed(records)
        _print_vals(console, records)
        console.print(_summary_table(state, summary.total_steps, name))
        return 0
    with Live(
        _summary_table(state, summary.total_steps, name), console=console, refresh_per_second=8
    ) as live:
        for rec in replay_records(records, speed):
            state.feed([rec])
            if isinstance(rec, ValRecord):
                live.console.print(data(f"step {rec.step}: val PSNR {fmt.psnr(rec.psnr)} dB"))
            elif isinstance(rec, EventRecord):
                live.console.print(data(f"step {rec.step}: {rec.msg}"))
            live.update(_summary_table(state, summary.total_steps, name))
    return 0


def _print_vals(console: Console, records: list[Record]) -> None:
    vals = [r for r in records if isinstance(r, ValRecord)]
    if not vals:
        return
    t = Table(title="validation", header_style="bold")
    t.add_column("step", justify="right")
    t.add_column("PSNR dB", justify="right")
    t.add_column("input dB", justify="right")
    step = max(1, len(vals) // 20)  # at most ~20 rows for long runs
    shown = vals[::step]
    if shown[-1] is not vals[-1]:
        shown.append(vals[-1])
    for r in shown:
        t.add_row(str(r.step), fmt.psnr(r.psnr), fmt.psnr(r.input_psnr))
    console.print(t)


# ---------------------------------------------------------------------------
# evaluation matrix


@contextmanager
def progress_on_stderr(total: int, what: str) -> Iterator[Callable[[], None]]:
    """A tick function driving a progress bar on stderr (terminals only; stdout stays clean)."""
    console = Console(stderr=True)
    if not console.is_terminal or total <= 0:
        yield lambda: None
        return
    with Progress(
        TextColumn(what),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


def _level(v: float) -> str:
    return f"{v:g}"


def matrix_table(m, console: Console | None = None) -> None:
    """The evaluation matrix (a :class:`n2n_core.evaluation.matrix.Matrix`) as a table, then time per column."""
    console = console or _console()
    names = list(dict.fromkeys(b for c in m.cells for b in c.baselines))
    several = len({c.snapshot for c in m.cells}) > 1
    t = Table(title="evaluation (PSNR dB)", header_style="bold")
    cols = ("snapshot", "step", "dataset", "noise", "level", "images", "network", "colour shift")
    for col in (*cols, *names):
        t.add_column(col, justify="left" if col in ("snapshot", "dataset", "noise") else "right")
    for c in m.cells:
        mark = " *" if several and c.best else ""
        t.add_row(
            data(Path(c.snapshot).name + mark),
            str(c.step),
            data(c.dataset),
            data(c.noise),
            _level(c.level),
            str(c.images),
            f"{c.psnr:.2f}",
            fmt.colour_shift(c.colour.mean_abs, c.colour.worst, worst_label="")
            if c.colour
            else "-",
            *(fmt.psnr(c.baselines.get(n)) for n in names),
        )
    console.print(t)
    seconds: dict[str, float] = {}
    for c in m.cells:
        for k, v in c.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
    # Baselines are scored once per data set and level and repeated in every snapshot's
    # cells: count each once.
    per_cell = {(c.dataset, c.level): c.seconds for c in m.cells}
    for k in names:
        seconds[k] = sum(s.get(k, 0.0) for s in per_cell.values())
    console.print(
        data("time per column: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())),
        highlight=False,
    )
    if several:
        best = m.best()
        console.print(
            data(
                f"best snapshot: {Path(best['snapshot']).name} (step {best['step']}), "
                f"mean {best['mean_psnr']:.2f} dB"
            )
        )
    if m.stored:
        console.print(data(f"stored as eval records in {RunPaths(m.run_dir).metrics}"))


def _param(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def sweep_table(view: SweepView, console: Console | None = None) -> None:
    """``sweep status``: one row per point, one column per grid key. Everything but the
    numbers comes from sweep.json and run folders: shown through :func:`data`."""
    console = console or _console()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(view.counts.items()))
    title = data(f"sweep {view.path.name}: {view.status} ({counts})")
    t = Table(title=title, header_style="bold")
    keys = list(view.grid_keys)
    t.add_column("#", justify="right")
    for k in keys:
        t.add_column(data(k))
    t.add_column("status")
    t.add_column("step", justify="right")
    t.add_column("best dB", justify="right")
    t.add_column("last dB", justify="right")
    has_jobs = any(p.job_id for p in view.points)
    if has_jobs:
        t.add_column("job")
    t.add_column("run")
    for p in view.points:
        total = f"/{p.total_steps}" if p.total_steps else ""
        row = [str(p.index)]
        # A search's values are drawn, not typed: four significant digits say enough.
        show = _param if view.search is None else search_param
        row += [data(show(p.params.get(k, "—"))) for k in keys]
        row += [
            data(p.status, STATUS_STYLE.get(p.status, "")),
            f"{p.step}{total}",
            fmt.psnr(p.best_psnr),
            fmt.psnr(p.last_psnr),
        ]
        if has_jobs:
            row.append(data(f"{p.job_id or '—'} {p.job_state or ''}".strip()))
        row.append(data(p.run))
        t.add_row(*row)
    console.print(t)
    for p in view.points:
        if p.refused:
            console.print(data(f"point {p.index}: refused: {p.refused}", "bold red"))
    if view.message:
        console.print(data(view.message))
    if view.search is not None:
        sv = view.search
        console.print(data(sv.header()))
        console.print(data(sv.best_line(), "bold"))
        for line in sv.curve_lines(width=max(10, min(60, console.width - 52))):
            console.print(data(line))
        console.print(data(sv.importance_line()))


class download_bar:
    """A rich progress bar on stderr, one task per file, as a ``fetch`` progress callback."""

    def __enter__(self):
        self.bar = None  # started at the first byte: an early error prints nothing else
        self.tasks: dict[str, int] = {}
        return self

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self.bar = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=total)
        self.bar.update(self.tasks[name], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _clipped(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def presets_table(
    rows: list[dict], builtin_dir: str, local_dir: str, console: Console | None = None
) -> None:
    """``n2n-core presets``: every preset a name finds, with where it comes from."""
    console = console or _console()
    t = Table(title="presets (n2n-core run NAME)", header_style="bold")
    for col in ("name", "source", "task", "noise", "steps", "description"):
        t.add_column(col, justify="right" if col == "steps" else "left")
    for r in rows:
        source = r["source"] + (" (overrides built-in)" if r["overrides_builtin"] else "")
        if "error" in r:
            t.add_row(data(r["name"]), data(source), "", "", "", data(r["error"], "bold red"))
            continue
        t.add_row(
            data(r["name"]),
            data(source),
            data(r["task"]),
            data(r["noise"]),
            f"{r['steps']:,}",
            data(_clipped(r["description"])),
        )
    console.print(t)
    console.print(data(f"built-in: {builtin_dir}"))
    console.print(data(f"local:    {local_dir} (--presets-dir DIR for another folder)"))


def models_table(models, console: Console | None = None) -> None:
    """``n2n-core models``: the trained models in the box, with what they measured."""
    console = console or _console()
    if not models:
        console.print("no built-in models in this install")
        return
    t = Table(title="built-in models (--snapshot builtin:NAME)", header_style="bold")
    for col in ("name", "preset", "steps", "measured (PSNR dB, colour shift)", "commit"):
        t.add_column(col, justify="right" if col == "steps" else "left")
    for m in models:
        first = (data(m.spec), data(m.preset), f"{m.steps:,}")
        for i, s in enumerate(m.scores or [None]):
            score = "" if s is None else (
                f"{s.dataset} ({s.noise}{'' if s.level is None else f' {s.level:g}'}): "
                f"{fmt.psnr(s.psnr)}, shift {fmt.colour_shift(s.colour_shift, None)}"
            )  # fmt: skip
            t.add_row(
                *(first if i == 0 else ("", "", "")),
                data(score),
                data(m.commit[:10]) if i == 0 else "",
            )
    console.print(t)
