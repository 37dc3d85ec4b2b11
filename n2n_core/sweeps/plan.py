"""Planning a sweep: a preset times a grid of values (times seeds) becomes points.

Every point is validated before anything is created: each bad grid value, and
each combination the preset model rejects, is one problem of one
:class:`UserError`. Nothing here writes; :mod:`n2n_core.sweeps.store` records
the plan.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2n_core.config.loader import read_preset_data
from n2n_core.config.overrides import parse_value, set_key
from n2n_core.config.schema import SEED_MAX, Preset, validate_preset
from n2n_core.errors import UserError

# At most this many points (grid combinations times seeds) per sweep: each is a run
# folder, and the plan holds every point's preset in memory before anything is written.
MAX_POINTS = 10_000


def split_values(raw: str) -> list[str]:
    """``"0.1,0.2"`` -> two values; commas inside ``[...]``/``{...}`` belong to the value."""
    out, depth, cur = [], 0, []
    for ch in raw:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [v.strip() for v in out]


def parse_grid(items: list[str]) -> tuple[dict[str, list[Any]], dict[str, list[str]], list[str]]:
    """``--grid KEY=V1,V2`` flags -> (values per key, their raw text, problems)."""
    grid: dict[str, list[Any]] = {}
    raw: dict[str, list[str]] = {}
    problems: list[str] = []
    for text in items:
        key, eq, values = text.partition("=")
        key = key.strip()
        if not eq or not key:
            problems.append(f"--grid {text!r}: expected KEY=V1,V2,..., e.g. train.lr=1e-3,3e-4")
            continue
        if any(not part for part in key.split(".")):
            problems.append(f"--grid {text!r}: bad key {key!r}")
            continue
        if key in grid:
            problems.append(f"--grid {key}: key given twice; put all its values in one --grid")
            continue
        texts = split_values(values)
        if any(not v for v in texts):
            problems.append(f"--grid {text!r}: empty value")
            continue
        if len(set(texts)) != len(texts):
            problems.append(f"--grid {text!r}: a value is listed twice")
            continue
        grid[key] = [parse_value(v) for v in texts]
        raw[key] = texts
    for key in grid:
        for section in grid:
            if holds(section, key):
                problems.append(
                    f"--grid {key}: inside --grid {section}, whose values replace the whole "
                    f"{section} section (so {key}'s would never be used); give {key} inside "
                    f"{section}'s values, or grid only {key}"
                )
    return grid, raw, problems


def holds(section: str, key: str) -> bool:
    """Whether the dotted ``key`` lies inside ``section`` (``noise`` holds
    ``noise.val_sigma``; a key does not hold itself)."""
    outer, inner = section.split("."), key.split(".")
    return len(outer) < len(inner) and inner[: len(outer)] == outer


@dataclass
class SweepPlan:
    """A validated sweep, before anything is written: the base and every point's preset."""

    preset_path: str
    base: dict[str, Any]  # the preset file after --set, before the grid
    sets: list[str]
    grid: dict[str, list[Any]]
    seeds: int
    params: list[dict[str, Any]]  # one per point, grid keys (and train.seed) -> value
    presets: list[Preset]


def _with(base: dict[str, Any], params: dict[str, Any], what: str) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for key, value in params.items():
        # A copy: a section value shared by every point's params must never be edited
        # through the preset built from it.
        set_key(data, key.split("."), copy.deepcopy(value), what)
    return data


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in params.items())


def _unknown_prefix(key: str, message: str) -> str | None:
    """The part of the dotted ``key`` (``nosuch`` of ``nosuch.lr``) that ``message`` calls an
    unknown key; None when the message is about something else."""
    parts = key.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if f": {prefix}: unknown key" in message:
            return prefix
    return None


def value_problems(
    data: dict[str, Any], key: str, values: list[Any], texts: list[str], flag: str
) -> list[str]:
    """Why each of ``values`` of ``key`` (typed as ``texts``) makes no valid preset on its
    own; ``flag`` (``--grid``, ``--space``) names where it was given."""
    problems: list[str] = []
    try:  # the key itself first: a path through a value is said once, not once per value
        _with(data, {key: None}, f"{flag} {key}")
    except UserError as e:
        return [str(e)]
    for value, text in zip(values, texts, strict=True):
        what = f"{flag} {key}={text}"
        try:
            validate_preset(_with(data, {key: value}, what), what)
        except UserError as e:
            unknown = _unknown_prefix(key, str(e))
            if unknown is not None:  # about the key (or its section): say it once
                problems.append(f"{flag} {key}: {unknown}: unknown key (not a preset key)")
                break
            section = key.rpartition(".")[0]
            if key.endswith(".type") and "unknown key" in str(e):
                # The other kind's parameters stay behind: the whole section must change.
                kinds = ",".join(f"{{type: {t}}}" for t in texts)
                problems.append(
                    f"{e}; to change the kind, grid the whole section: --grid '{section}={kinds}'"
                )
                continue
            problems.append(str(e))
    return problems


def point_preset(base: dict[str, Any], params: dict[str, Any], what: str) -> Preset:
    """The preset of one point: ``base`` with ``params`` set, validated (a :class:`UserError`)."""
    return validate_preset(_with(base, params, what), what)


def plan_sweep(
    preset_path: str | Path, grid_items: list[str], sets: list[str], seeds: int
) -> SweepPlan:
    """Parse and validate every point; all problems are raised together, nothing is written."""
    from n2n_core.config.overrides import apply_overrides

    if seeds < 1:
        raise UserError(f"--seeds {seeds}: must be >= 1")
    if seeds > MAX_POINTS:
        raise UserError(f"--seeds {seeds}: at most {MAX_POINTS} points per sweep")
    data = apply_overrides(read_preset_data(preset_path), sets)
    base_preset = validate_preset(copy.deepcopy(data), str(preset_path))
    grid, raw, problems = parse_grid(grid_items)
    # Counted before any point is built: the product of the grid can be huge.
    n_points = math.prod(len(v) for v in grid.values()) * seeds
    if n_points > MAX_POINTS:
        sizes = " x ".join([*(str(len(v)) for v in grid.values()), *([str(seeds)] * (seeds > 1))])
        raise UserError(
            f"sweep: {n_points} points asked for ({sizes}); at most {MAX_POINTS} per sweep"
        )
    last_seed = base_preset.train.seed + seeds - 1
    if seeds > 1 and last_seed > SEED_MAX:
        raise UserError(
            f"--seeds {seeds}: seeds {base_preset.train.seed}..{last_seed} go past "
            f"train.seed's largest value {SEED_MAX}"
        )
    set_keys = list(dict.fromkeys(s.partition("=")[0].strip() for s in sets))
    for key in grid:
        if key in set_keys:
            problems.append(f"--grid {key}: also given with --set; keep one")
        for given in set_keys:
            # --set is applied first: a grid value replacing its section drops it. (A --set
            # section with a grid key inside is fine: the grid value lands in it.)
            if holds(key, given):
                problems.append(
                    f"--set {given}: inside --grid {key}, whose values replace the whole "
                    f"{key} section (so the --set value would never be used); give {given} "
                    f"inside {key}'s values"
                )
    if seeds > 1 and "train.seed" in grid:
        problems.append("--grid train.seed: use either --seeds or a train.seed grid, not both")
    for key in grid:
        if seeds > 1 and holds(key, "train.seed"):
            problems.append(
                f"--grid {key}: holds train.seed, which --seeds {seeds} sets for each point; "
                f"use --seeds or a train.seed in {key}'s values, not both"
            )
    # Each value on its own first, so a bad value is named once, not once per point.
    for key, values in grid.items():
        problems += value_problems(data, key, values, raw[key], "--grid")
    if problems:
        raise UserError.collected(problems)

    seed_values = [base_preset.train.seed + k for k in range(seeds)] if seeds > 1 else [None]
    params_list, presets = [], []
    for combo in itertools.product(*grid.values()):
        for seed in seed_values:
            params = dict(zip(grid.keys(), combo, strict=True))
            if seed is not None:
                params["train.seed"] = seed
            what = f"point {params_text(params)}"
            try:
                presets.append(validate_preset(_with(data, params, what), what))
            except UserError as e:
                problems.append(str(e))
                continue
            params_list.append(params)
    if problems:
        raise UserError.collected(problems)
    kinds = {p.runtime.device for p in presets}
    if len(kinds) > 1:
        raise UserError(
            f"runtime.device: one kind of device per sweep (the grid gives {sorted(kinds)})"
        )
    return SweepPlan(
        str(preset_path), data, list(sets), grid, seeds, params_list, presets or [base_preset]
    )
