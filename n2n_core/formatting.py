"""How numbers read, in the console, the TUI and reports alike: dB, ages, durations,
colour shift, losses. Pure functions, no imports of ours; PSNR always with two
decimals, as the field reports it.
"""

from __future__ import annotations

import math

DASH = "—"


def psnr(x: float | None) -> str:
    return DASH if x is None or not math.isfinite(x) else f"{x:.2f}"


def colour_shift(
    mean_abs: float | None,
    worst: float | None,
    missing: str = DASH,
    worst_label: str = "worst ",
    channel: str | None = None,
    image: str | None = None,
) -> str:
    """The colour bias beside a PSNR: mean |shift| and the worst signed one, levels of 255,
    with the channel and image of the worst where known: ``0.72 (worst -2.30 G in x.png)``.

    Tables with a column header that says "(worst)" pass ``worst_label=""``."""
    if mean_abs is None or not math.isfinite(mean_abs):
        return missing
    if worst is None or not math.isfinite(worst):
        return f"{mean_abs:.2f}"
    where = (f" {channel}" if channel else "") + (f" in {image}" if image else "")
    return f"{mean_abs:.2f} ({worst_label}{worst:+.2f}{where})"


def ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return DASH
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def num(x: float | None) -> str:
    """A loss or learning rate: 4 significant digits, scientific when small or large."""
    if x is None:
        return DASH
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.4g}"
    return f"{x:.3e}"


def count(n: int | None) -> str:
    """1234 -> 1.2k, 500000 -> 500k, 2_000_000 -> 2M."""
    if n is None:
        return DASH
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        k = n / 1000
        return f"{k:.1f}k".replace(".0k", "k") if k < 100 else f"{k:.0f}k"
    m = n / 1_000_000
    return f"{m:.1f}M".replace(".0M", "M") if m < 100 else f"{m:.0f}M"


def steps(step: int, total: int | None) -> str:
    return f"{count(step)}/{count(total)}" if total else count(step)


def duration(seconds: float | None) -> str:
    """Compact duration: 45s, 3m 05s, 2h 07m, 3d 04h."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return DASH
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"


def clock(seconds: float) -> str:
    """A run's elapsed time as a console line gives it: 4:05, 1:02:03."""
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def age(then: float | None, now: float) -> str:
    """How long ago: 'just now', '42s ago', '3m ago', '5h ago', '12d ago'."""
    # Read from files: a missing, zero, NaN or non-number time is no time at all.
    if not isinstance(then, int | float) or not then or not math.isfinite(then):
        return DASH
    s = now - then
    if s < 5:
        return "just now"
    if s < 60:
        return f"{int(s)}s ago"
    if s < 3600:
        return f"{int(s // 60)}m ago"
    if s < 86400 * 2:
        return f"{int(s // 3600)}h ago"
    return f"{int(s // 86400)}d ago"


# How a noise model's strength reads beside an evaluation score (the engine's val_* parameters).
LEVEL_SYMBOLS = {
    "gaussian": "σ",
    "poisson": "λ",
    "impulse": "p",
    "bernoulli": "keep ",
    "text": "cover ",
}


def noise_level(noise: str | None, level: float | None) -> str:
    """A noise strength as a column header names it: ``σ25``, ``λ30``, ``p0.7``."""
    if level is None or not math.isfinite(level):
        return DASH
    symbol = LEVEL_SYMBOLS.get(noise or "", f"{noise} " if noise else "")
    return f"{symbol}{level:g}"
