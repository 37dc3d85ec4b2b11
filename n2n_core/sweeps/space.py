"""A search space: ``--space KEY=DIST`` flags, each a preset key and what to draw it from.

``DIST`` is one of ``loguniform(a,b)``, ``uniform(a,b)``, ``int(a,b)`` (both ends
included) or ``choice(v1,v2,...)`` (values read as on a command line). Parsing
and checking need no Optuna: the space is checked against the preset before
anything is written (each bound and each choice must make a valid preset, so a
bad space is one error, not a sweep that fails at its tenth trial);
:func:`distributions` turns it into Optuna's when the study is made.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from n2n_core.config.overrides import parse_value
from n2n_core.config.schema import Preset
from n2n_core.errors import UserError
from n2n_core.sweeps.plan import holds, point_preset, split_values, value_problems

KINDS = ("loguniform", "uniform", "int", "choice")
_DIST_RE = re.compile(r"^\s*([a-z]+)\s*\((.*)\)\s*$", re.S)
# At most this many grid points (a choice-only space searched as a grid).
MAX_GRID = 10_000


@dataclass(frozen=True)
class Dist:
    """One key's distribution; ``text`` is how the user wrote it (kept in sweep.json)."""

    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()
    text: str = ""

    def ends(self) -> list[Any]:
        """The values that bound what can be drawn: both ends, or every choice."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]


def _number(raw: str, what: str, whole: bool) -> float | int:
    value = parse_value(raw)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{what}: {raw.strip()!r} is not a number")
    if not math.isfinite(value):
        raise UserError(f"{what}: {raw.strip()!r} is not a finite number")
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise UserError(f"{what}: {raw.strip()!r} is not a whole number")
        return int(value)
    return float(value)


def parse_dist(text: str, what: str) -> Dist:
    """``loguniform(1e-4,1e-2)`` -> a :class:`Dist`; ``what`` names the flag in errors."""
    m = _DIST_RE.match(text)
    if not m or m.group(1) not in KINDS:
        raise UserError(
            f"{what}: expected one of loguniform(a,b), uniform(a,b), int(a,b), choice(v1,v2,...)"
        )
    kind, args = m.group(1), split_values(m.group(2))
    if kind == "choice":
        if any(not a for a in args):
            raise UserError(f"{what}: an empty choice")
        values = [parse_value(a) for a in args]
        for a, v in zip(args, values, strict=True):
            if not (v is None or isinstance(v, bool | int | float | str)):
                raise UserError(
                    f"{what}: choice {a!r} is not a single value (a section's values are "
                    "searched with --grid)"
                )
        if len(set(map(repr, values))) != len(values):
            raise UserError(f"{what}: a choice is listed twice")
        return Dist(kind, choices=tuple(values), text=text.strip())
    if len(args) != 2 or any(not a for a in args):
        raise UserError(f"{what}: {kind} takes two bounds, e.g. {kind}(1,8)")
    low, high = (_number(a, what, whole=kind == "int") for a in args)
    if low >= high:
        raise UserError(f"{what}: the low bound {args[0]} must be below the high bound {args[1]}")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{what}: loguniform needs bounds above 0")
    return Dist(kind, low, high, text=text.strip())


def parse_space(items: list[str]) -> dict[str, Dist]:
    """``--space KEY=DIST`` flags -> key -> :class:`Dist`; every problem raised together."""
    space: dict[str, Dist] = {}
    problems: list[str] = []
    for item in items:
        key, eq, dist = item.partition("=")
        key = key.strip()
        what = f"--space {item}"
        if not eq or not key or any(not p for p in key.split(".")):
            problems.append(f"{what}: expected KEY=DIST, e.g. train.lr=loguniform(1e-4,1e-2)")
            continue
        if key in space:
            problems.append(f"--space {key}: key given twice")
            continue
        try:
            space[key] = parse_dist(dist, what)
        except UserError as e:
            problems.append(str(e))
    for key in space:
        for other in space:
            if holds(other, key):
                problems.append(f"--space {key}: inside --space {other}; search one of them")
    if problems:
        raise UserError.collected(problems)
    if not space:
        raise UserError(
            "--search: give the space to search, e.g. --space train.lr=loguniform(1e-4,1e-2)"
        )
    return space


def grid_points(space: dict[str, Dist]) -> list[dict[str, Any]]:
    """Every combination of a choice-only space, in the order written (as ``--grid``)."""
    not_choice = [k for k, d in space.items() if d.kind != "choice"]
    if not_choice:
        raise UserError(
            f"--search grid: --space {not_choice[0]} is {space[not_choice[0]].kind}; a grid "
            "search takes choice(...) values only"
        )
    n = math.prod(len(d.choices) for d in space.values())
    if n > MAX_GRID:
        raise UserError(f"--search grid: {n} combinations; at most {MAX_GRID}")
    keys = list(space)
    return [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(space[k].choices for k in keys))
    ]


def distributions(space: dict[str, Dist]) -> dict[str, Any]:
    """The space as Optuna distributions (Optuna imported here, by the scheduler only)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for key, d in space.items():
        if d.kind == "choice":
            out[key] = CategoricalDistribution(list(d.choices))
        elif d.kind == "int":
            out[key] = IntDistribution(int(d.low), int(d.high))
        else:
            out[key] = FloatDistribution(float(d.low), float(d.high), log=d.kind == "loguniform")
    return out


def space_text(space: dict[str, Dist]) -> dict[str, str]:
    """How ``sweep.json`` keeps the space: key -> the distribution as written."""
    return {k: d.text for k, d in space.items()}


def read_space(texts: dict[str, str]) -> dict[str, Dist]:
    return {k: parse_dist(t, f"sweep.json search.space.{k}") for k, t in texts.items()}


@dataclass
class SearchPlan:
    """A validated search before anything is written: the base (after ``--set``), the space,
    and the base's preset (what every point shares: device, nproc, data)."""

    preset_path: str
    base: dict[str, Any]
    sets: list[str]
    space: dict[str, Dist]
    preset: Preset


def plan_search(preset_path: str, space_items: list[str], sets: list[str]) -> SearchPlan:
    """Parse the space and check it against the preset: each bound and each choice must make
    a valid preset on its own; all problems are raised together, nothing is written."""
    import copy

    from n2n_core.config.loader import read_preset_data
    from n2n_core.config.overrides import apply_overrides
    from n2n_core.config.schema import validate_preset

    data = apply_overrides(read_preset_data(preset_path), sets)
    base = validate_preset(copy.deepcopy(data), str(preset_path))
    space = parse_space(space_items)
    problems: list[str] = []
    set_keys = list(dict.fromkeys(s.partition("=")[0].strip() for s in sets))
    for key, dist in space.items():
        if key in set_keys:
            problems.append(f"--space {key}: also given with --set; keep one")
        ends = dist.ends()
        problems += value_problems(data, key, ends, [str(v) for v in ends], "--space")
        if key.startswith("runtime.") and key.split(".")[1] in ("device", "nproc", "nnodes"):
            # Slots are planned once, for the base's devices: every trial must fit them.
            problems.append(f"--space {key}: the search runs every trial on the same devices")
    if problems:
        raise UserError.collected(problems)
    return SearchPlan(str(preset_path), data, list(sets), space, base)


def sampled_preset(base: dict[str, Any], params: dict[str, Any]) -> Preset:
    """A sampled point's preset, validated before its run folder is made."""
    text = " ".join(f"{k}={v!r}" for k, v in params.items())
    return point_preset(base, params, f"sampled point {text}")
