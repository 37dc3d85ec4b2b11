"""Braille line charts: 2x4 dots per cell, drawn from already-downsampled series.

Pure drawing code (:func:`render_chart`) is kept apart from the widget so it can
be tested and timed on its own. Series are given in data coordinates; every
point is mapped to a dot and joined to the previous one, so a 2,048-point series
on a 70-column chart costs a few thousand integer operations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

from n2n_core import formatting as fmt

_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


@dataclass
class Line:
    """One series to draw. ``colour`` is a Rich colour string."""

    xs: Sequence[float]
    ys: Sequence[float]
    colour: str
    label: str = ""
    dashed: bool = False


class Canvas:
    def __init__(self, width: int, height: int):
        self.w, self.h = width, height
        self.bits = [[0] * width for _ in range(height)]
        self.owner = [[-1] * width for _ in range(height)]

    def dot(self, px: int, py: int, who: int) -> None:
        if 0 <= px < self.w * 2 and 0 <= py < self.h * 4:
            cx, cy = px >> 1, py >> 2
            self.bits[cy][cx] |= _DOT[py & 3][px & 1]
            self.owner[cy][cx] = who

    def line(self, x0: int, y0: int, x1: int, y1: int, who: int, dashed: bool) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx = 1 if x0 < x1 else -1
        sy = 1 if y0 < y1 else -1
        err = dx + dy
        while True:
            if not dashed or (x0 >> 1) % 2 == 0:
                self.dot(x0, y0, who)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy


def _ylabel(v: float, log: bool) -> str:
    if log:
        v = 10**v
    return fmt.num(v)


def nice_range(lo: float, hi: float) -> tuple[float, float]:
    if lo == hi:
        pad = abs(lo) * 0.05 or 1.0
        out = lo - pad, hi + pad
    else:
        pad = (hi - lo) * 0.06
        out = lo - pad, hi + pad
    # A series that never goes negative (ms/step, lr, PSNR) keeps a non-negative axis.
    return (max(out[0], 0.0) if lo >= 0 else out[0]), out[1]


def render_chart(
    lines: Sequence[Line],
    width: int,
    height: int,
    *,
    log_y: bool = False,
    x_range: tuple[float, float] | None = None,
    axis_style: str = "dim",
    empty: str = "waiting for data…",
) -> Text:
    """The chart as ``height`` lines of ``width`` cells (y labels left, x labels below)."""
    width, height = max(width, 12), max(height, 3)
    pts = []
    for ln in lines:
        xs, ys = ln.xs, ln.ys
        if log_y:
            pairs = [(x, math.log10(y)) for x, y in zip(xs, ys, strict=False) if y > 0]
        else:
            pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(y)]
        pts.append(pairs)
    allp = [p for ps in pts for p in ps]
    if not allp:
        pad = " " * width
        body = [pad] * (height - 1)
        mid = (height - 1) // 2
        body[mid] = empty.center(width)[:width]
        return Text("\n".join(body + [pad]), style=axis_style)
    ymin = min(p[1] for p in allp)
    ymax = max(p[1] for p in allp)
    ylo, yhi = nice_range(ymin, ymax)
    if x_range:
        xlo, xhi = x_range
    else:
        xlo, xhi = min(p[0] for p in allp), max(p[0] for p in allp)
    if xhi <= xlo:
        xhi = xlo + 1
    labels = [_ylabel(yhi, log_y), _ylabel((ylo + yhi) / 2, log_y), _ylabel(ylo, log_y)]
    lw = max(len(s) for s in labels)
    pw, ph = width - lw - 1, height - 1
    canvas = Canvas(pw, ph)
    sx = (pw * 2 - 1) / (xhi - xlo)
    sy = (ph * 4 - 1) / (yhi - ylo)
    top = ph * 4 - 1
    for who, (ln, ps) in enumerate(zip(lines, pts, strict=False)):
        prev = None
        for x, y in ps:
            px = int(round((x - xlo) * sx))
            py = top - int(round((y - ylo) * sy))
            if prev is None:
                canvas.dot(px, py, who)
            elif prev != (px, py):
                canvas.line(prev[0], prev[1], px, py, who, ln.dashed)
            prev = (px, py)
    styles = [Style.parse(ln.colour) for ln in lines]
    axis = Style.parse(axis_style)
    out = Text(no_wrap=True, overflow="crop")
    label_rows = {0: labels[0], (ph - 1) // 2: labels[1], ph - 1: labels[2]}
    for cy in range(ph):
        out.append(
            label_rows.get(cy, "").rjust(lw) + "┤" if cy in label_rows else " " * lw + "│", axis
        )
        bits, owner = canvas.bits[cy], canvas.owner[cy]
        run_who, run = None, []
        for cx in range(pw):
            who = owner[cx] if bits[cx] else -1
            if who != run_who and run:
                out.append(
                    "".join(run), styles[run_who] if run_who is not None and run_who >= 0 else None
                )
                run = []
            run_who = who
            run.append(chr(0x2800 + bits[cx]) if bits[cx] else " ")
        if run:
            out.append(
                "".join(run), styles[run_who] if run_who is not None and run_who >= 0 else None
            )
        out.append("\n")
    left, right = fmt.count(int(xlo)), fmt.count(int(xhi))
    mid = fmt.count(int((xlo + xhi) / 2))
    axis_line = [" "] * pw
    for pos, s in ((0, left), ((pw - len(mid)) // 2, mid), (pw - len(right), right)):
        for i, ch in enumerate(s):
            if 0 <= pos + i < pw:
                axis_line[pos + i] = ch
    out.append(" " * lw + "└" + "".join(axis_line), axis)
    return out
