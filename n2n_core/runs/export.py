"""Runs out of the terminal: metrics as CSV, curves as a picture, a Markdown table.

``n2n-core export RUN_DIR... [--csv F] [--plot F.png|.svg] [--markdown]`` and the
TUI's export action both call these. Every output file is written atomically
and only where the user named it; a path that cannot be written is a
``UserError`` naming it, and nothing else is touched.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from n2n_core import formatting as fmt
from n2n_core.errors import UserError, printable
from n2n_core.files.atomic import atomic_write_bytes
from n2n_core.files.output import check_output
from n2n_core.runs.folders import resolve_run_dir
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.records import SysRecord, read_metrics
from n2n_core.runs.summary import RunSummary, eval_cell, eval_heading, summarize_run

PLOT_SUFFIXES = (".png", ".svg")
PLOT_HINT = "install the optional extra: pip install 'n2n[plot]' (or pip install matplotlib)"


def _flat_record(rec: dict[str, Any]) -> dict[str, Any]:
    """Nested fields (an eval record's ``baselines``, ``seconds``) as ``baselines.nlm`` columns."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out


def _write(p: Path, data: bytes, what: str) -> None:
    try:
        atomic_write_bytes(p, data)
    except OSError as e:
        raise UserError(f"{p}: cannot write {what} ({e.strerror or e})") from None


def csv_text(run_dirs: list[Path]) -> str:
    """One row per record of every run, all fields; a ``run`` column says whose."""
    rows, columns = [], {"run": None}
    for d in run_dirs:
        for rec in read_metrics(RunPaths(d).metrics):
            flat = rec.flat() if isinstance(rec, SysRecord) else _flat_record(rec.to_json())
            row = {"run": d.name, **flat}
            columns.update(dict.fromkeys(row))
            rows.append(row)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([_csv_text(c) for c in columns])  # keys come from the file too
    for row in rows:
        w.writerow([_cell(row[c]) if c in row else "" for c in columns])
    return buf.getvalue()


# A cell a spreadsheet would read as a formula (or, after a tab or CR, might).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(text: str) -> str:
    """A string from a file as a CSV cell that is only ever text: control characters
    shown escaped (``\\x1b``), and a leading ``'`` before what a spreadsheet would run
    as a formula (``=HYPERLINK(...)``; the OWASP advice against CSV injection)."""
    shown = printable(text)
    return "'" + shown if text.startswith(_FORMULA_START) else shown


def _cell(v: Any) -> Any:
    if isinstance(v, str):
        return _csv_text(v)
    if isinstance(v, list):
        return json.dumps(v)  # starts with "[", control characters as \u001b
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "-inf" is the code's own text, a number to a spreadsheet
    if isinstance(v, bool | int | float) or v is None:
        return v
    return _csv_text(str(v))


def write_csv(run_dirs: list[Path], out: str | Path) -> Path:
    p = check_output(out, "the CSV file")
    _write(p, csv_text(run_dirs).encode("utf-8"), "the CSV file")
    return p


def plot_bytes(run_dirs: list[Path], fmt: str, x: str = "step") -> bytes:
    """Loss (EMA-smoothed, log scale), validation PSNR (noisy input dashed), lr and ms/step.

    One colour per run, the same in every panel.
    """
    try:
        import matplotlib
    except ImportError:
        raise UserError(f"--plot: matplotlib is not installed; {PLOT_HINT}") from None
    matplotlib.use("Agg")  # files only: never open a window, work without a display
    import matplotlib.pyplot as plt

    from n2n_core.runs.curves import METRICS, PANELS, X_LABELS, curve, ema

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    try:
        records = [read_metrics(RunPaths(d).metrics) for d in run_dirs]
        for ax, metric in zip(axes.flat, PANELS, strict=True):
            for i, (d, recs) in enumerate(zip(run_dirs, records, strict=True)):
                colour = f"C{i % 10}"
                if metric.companion:
                    cx, cy = curve(recs, METRICS[metric.companion], x)  # type: ignore[arg-type]
                    ax.plot(cx, cy, color=colour, linewidth=0.8, linestyle="--")
                xs, ys = curve(recs, metric, x)  # type: ignore[arg-type]
                if not xs:
                    continue
                if metric.smooth:
                    ax.plot(xs, ys, color=colour, alpha=0.25, linewidth=0.8)
                    ys = ema(ys)
                ax.plot(xs, ys, color=colour, linewidth=1.5, label=d.name)
            ax.set_title(metric.label)
            ax.set_xlabel(X_LABELS[x])
            if metric.log and ax.lines:
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
        # Each run has the same colour in every panel: one legend for the figure, taken
        # from the panel that has the most runs.
        handles, labels = max(
            (ax.get_legend_handles_labels() for ax in axes.flat), key=lambda hl: len(hl[1])
        )
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)))
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=110)
    finally:
        plt.close(fig)
    return buf.getvalue()


def write_plot(run_dirs: list[Path], out: str | Path, x: str = "step") -> Path:
    p = check_output(out, "the plot")
    if p.suffix.lower() not in PLOT_SUFFIXES:
        raise UserError(f"{p}: --plot writes .png or .svg files, not {p.suffix or 'no suffix'}")
    _write(p, plot_bytes(run_dirs, p.suffix.lower()[1:], x), "the plot")
    return p


# Markdown and HTML that data must not form: ``<``/``>``/``&`` as entities (no tag,
# autolink or entity), the rest backslash-escaped (no link, image, code or emphasis,
# no pipe that adds a column), each character once, so no escape is undone.
_MD_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"} | {c: "\\" + c for c in "\\|[]()`*_~@"}
# GitHub and other renderers also link a bare ``https://x``, ``www.x`` or ``a@b.c``
# in plain text: ``@`` is always escaped, ``:`` before ``/`` and ``.`` after ``www``.
_AUTOLINK = re.compile(r":(?=/)|(?<=www)\.", re.IGNORECASE)


def _md(v: Any) -> str:
    """A table cell that is only ever text: pipes, line breaks and other control
    characters in names from run folders cannot break the table (a lone CR ends a
    Markdown line too), and no link, image, HTML or emphasis can be formed."""
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else _MD_ESCAPES.get(c, c) for c in str(v))
    return _AUTOLINK.sub(lambda m: "\\" + m.group(0), text)


def markdown(summaries: list[RunSummary]) -> str:
    """The runs with their best results, then each run's latest evaluation matrix."""
    level, per_cell = eval_heading(summaries)
    at = f" at {level}" if level else " (level)" if per_cell else ""
    lines = [
        "| run | status | device | steps | best val PSNR (dB) | noisy input (dB) "
        f"| colour shift (last val) | eval PSNR (dB){at} | ms/step |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        steps = f"{s.step}" + (f"/{s.total_steps}" if s.total_steps else "")
        ms = "—" if s.ms_per_step is None else f"{s.ms_per_step:.1f}"
        known = s.info is not None and s.info.device
        device = f"{s.device}×{s.world_size} {s.precision}" if known else "—"
        lines.append(
            f"| {_md(s.path.name)} | {_md(s.status)} | {_md(device)} | {steps} | {fmt.psnr(s.best_psnr)} | "
            f"{fmt.psnr(s.input_psnr)} | {fmt.colour_shift(s.colour_shift, s.colour_shift_worst, worst_label='')} | "
            f"{_md(eval_cell(s, per_cell))} | {ms} |"
        )
    for s in summaries:
        if not s.evals:
            continue
        # The noisy input is every cell's: its own column, not a baseline some asked for.
        names = [
            n for n in dict.fromkeys(b for e in s.evals for b in e.baseline_names) if n != "noisy"
        ]
        lines += [
            "",
            f"**{_md(s.path.name)}** — evaluation (PSNR dB)",
            "",
            "| snapshot | step | dataset | noise | level | images | network | noisy input | "
            "colour shift | " + "".join(f"{_md(n)} | " for n in names).rstrip(),
            "|---|---:|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(names),
        ]
        for e in s.evals:
            mark = " (best)" if e.best else ""
            lines.append(
                f"| {_md(e.snapshot)}{mark} | {_md(e.step)} | {_md(e.dataset)} | {_md(e.noise)} | "
                f"{_md('—' if e.level is None else f'{e.level:g}')} | {_md(e.images)} | "
                f"{fmt.psnr(e.psnr)} | {fmt.psnr(e.input_psnr)} | {fmt.colour_shift(e.colour_shift, e.colour_shift_worst, worst_label='')} | "
                + "".join(f"{fmt.psnr(e.baseline(n))} | " for n in names).rstrip()
            )
    return "\n".join(lines) + "\n"


def summaries(run_dirs: list[str | Path]) -> tuple[list[Path], list[RunSummary]]:
    dirs = [resolve_run_dir(d) for d in run_dirs]
    return dirs, [summarize_run(d) for d in dirs]


def _write_new(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Write ``stem.suffix``, or ``stem-2.suffix``...: created exclusively, never an existing file."""
    n = 1
    while True:
        p = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            with open(p, "xb") as f:
                f.write(data)
            return p
        except FileExistsError:
            n += 1
        except OSError as e:
            raise UserError(f"{p}: cannot write export ({e.strerror or e})") from None


def export_bundle(
    run_dirs: list[str | Path], out_dir: str | Path, stem: str, x: str = "step"
) -> tuple[list[Path], str | None]:
    """CSV, Markdown and (with matplotlib) a PNG of the runs in ``out_dir``, under new names.

    What the TUI's export writes. Returns the files written and, when the picture
    could not be drawn, why (the other files are still written).
    """
    dirs, runs = summaries(run_dirs)
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{folder}: cannot create export folder ({e.strerror or e})") from None
    written = [
        _write_new(folder, stem, ".csv", csv_text(dirs).encode("utf-8")),
        _write_new(folder, stem, ".md", markdown(runs).encode("utf-8")),
    ]
    try:
        png = plot_bytes(dirs, "png", x)
    except UserError as e:
        return written, e.message
    written.append(_write_new(folder, stem, ".png", png))
    return written, None
