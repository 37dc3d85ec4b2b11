"""The evaluation matrix: snapshots x data sets x noise levels, beside classical baselines.

Every network cell is one call of :func:`evaluate.validate` — the one validation
protocol — so a cell equals ``n2n-core validate`` for the same snapshot, folder
and level to the bit. Baselines (:mod:`baselines`) are scored once per data set
and level on the same noise draws. With a run folder the cells are appended to
its ``metrics.jsonl`` as ``eval`` records, so ``runs``, the TUI and ``export``
show them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from n2n_core.errors import UserError
from n2n_core.runs.layout import RunPaths

if TYPE_CHECKING:
    from n2n_core.evaluation.protocol import ColourShift

Tick = Callable[[], None]


@dataclass
class Cell:
    """One snapshot on one data set at one noise level."""

    snapshot: str
    step: int
    dataset: str
    noise: str
    level: float
    psnr: float
    input_psnr: float
    images: int
    baselines: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    best: bool = False
    colour: ColourShift | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "step": self.step,
            "dataset": self.dataset,
            "noise": self.noise,
            "level": self.level,
            "psnr": round(self.psnr, 2),
            "input_psnr": round(self.input_psnr, 2),
            "images": self.images,
            "baselines": {k: round(v, 2) for k, v in self.baselines.items()},
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "best": self.best,
            **(self.colour.to_json() if self.colour else {}),
        }


@dataclass
class Matrix:
    cells: list[Cell]
    run_dir: Path | None = None
    stored: bool = False

    def best(self) -> dict[str, Any]:
        """The snapshot with the highest mean PSNR over all its cells."""
        from n2n_core.runs.state import best_mean

        name, mean = best_mean((c.snapshot, c.psnr) for c in self.cells)
        step = next(c.step for c in self.cells if c.snapshot == name)
        return {"snapshot": name, "step": step, "mean_psnr": round(mean, 2)}

    def to_json(self) -> dict[str, Any]:
        return {"results": [c.to_json() for c in self.cells], "best": self.best()}


# ---------------------------------------------------------------------------
# what to evaluate


def resolve_snapshots(path: str | Path, all_snapshots: bool) -> tuple[Path | None, list[Path]]:
    """(run folder or None, snapshot files) for ``evaluate SNAPSHOT|RUN_DIR``."""
    from n2n_core.engine.snapshots import list_snapshots, read_snapshot
    from n2n_core.pretrained import is_builtin, resolve_snapshot
    from n2n_core.runs.folders import resolve_run_dir

    if is_builtin(path):
        resolve_snapshot(path)  # an unknown name is an error here, before any work
        if all_snapshots:
            raise UserError(f"--all-snapshots: needs a run folder; {path} is one built-in model")
        return None, [Path(path)]
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: snapshot or run folder not found")
    if not p.is_dir():
        if all_snapshots:
            raise UserError(f"--all-snapshots: needs a run folder; {p} is one snapshot file")
        return None, [p]
    run_dir = resolve_run_dir(p)
    periodic = list_snapshots(run_dir)
    final = RunPaths(run_dir).final_snapshot
    chosen = [path for _, path in periodic] if all_snapshots else []
    if final.exists():
        # The periodic snapshot written at the final step holds the same weights.
        step = read_snapshot(final).step
        chosen = [path for s, path in periodic if s != step] if all_snapshots else []
        chosen.append(final)
    elif not all_snapshots and periodic:
        chosen.append(periodic[-1][1])
    if not chosen:
        raise UserError(f"{run_dir}: run has no snapshots to evaluate (snapshots/ is empty)")
    return run_dir, chosen


def open_dataset(spec: str, channels: int, max_images: int | None = None):
    """The validation images of a folder (the first ``max_images`` by name when given);
    empty, mixed gray/colour or unreadable is a ``UserError``."""
    from n2n_core.data.images import is_gray_file, list_images
    from n2n_core.data.sources import open_val

    if not spec.startswith("builtin:"):
        files = list_images(Path(spec).expanduser())
        if not files:
            raise UserError(
                f"{spec}: no images found in folder (png, jpg, bmp, tif, webp, ppm, gif)"
            )
        gray = [f for f in files if is_gray_file(f)]
        if gray and len(gray) != len(files):
            colour = next(f for f in files if f not in gray)
            raise UserError(
                f"{spec}: mixes grayscale ({gray[0].name}) and colour ({colour.name}) images; "
                "evaluate one kind per folder"
            )
    return open_val(spec, channels, max_images)


def parse_levels(text: str | None) -> list[float] | None:
    if text is None:
        return None
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise UserError(f"--levels {text}: {part.strip()!r} is not a number") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise UserError(f"--levels {text}: {part.strip()!r} is not a finite number")
        out.append(v)
    return out


def snapshot_noise(snap, requested: str | None) -> str:
    """The noise to evaluate ``snap`` with; a mismatch with what it learned is a ``UserError``."""
    meta = snap.meta
    if meta.get("task") == "mri":
        raise UserError(
            f"{snap.path}: an MRI snapshot reconstructs k-space; use `n2n-core validate` for it"
        )
    trained = meta.get("noise") or (snap.preset.get("noise") or {}).get("type")
    if requested and trained not in (None, "none") and requested != trained:
        raise UserError(
            f"{snap.path}: trained on {trained} noise, which does not match --noise {requested}; "
            f"evaluate it with --noise {trained} (or leave --noise out)"
        )
    # Own noisy data has no synthetic noise: scored on clean images at Gaussian sigma 25,
    # as `validate` does.
    return requested or (trained if trained not in (None, "none") else "gaussian")


# ---------------------------------------------------------------------------
# the matrix


@dataclass
class Plan:
    """Everything checked and loaded before the first image is denoised."""

    snapshots: list[Path]
    datasets: list[str]
    noise: str
    levels: list[float]
    baselines: list[str]
    images: dict[str, list] = field(default_factory=dict)

    def total_images(self) -> int:
        """Images scored in all: each snapshot and each baseline once per data set and level."""
        per_level = sum(len(v) for v in self.images.values())
        return per_level * len(self.levels) * (len(self.snapshots) + len(self.baselines))


def plan(
    snapshots: list[Path],
    datasets: list[str],
    noise: str | None,
    levels: list[float] | None,
    baselines: list[str],
    max_images: int | None = None,
) -> Plan:
    from n2n_core.engine.noise import default_level, noise_at_level
    from n2n_core.engine.snapshots import read_snapshot
    from n2n_core.evaluation.baselines import check_baselines

    if not datasets:
        raise UserError("--dataset-dir: at least one folder of clean images is needed")
    first = read_snapshot(snapshots[0])
    kind = snapshot_noise(first, noise)
    for other in snapshots[1:]:
        snapshot_noise(read_snapshot(other), kind)
    if levels is None:
        levels = [default_level(kind, first.preset.get("noise"))]
    for lv in levels:
        noise_at_level(kind, lv)  # range check before any work
    check_baselines(baselines, kind)
    p = Plan(snapshots, datasets, kind, levels, baselines)
    for d in dict.fromkeys(datasets):
        p.images[d] = open_dataset(d, first.in_channels, max_images)
    return p


def run_matrix(p: Plan, device: str = "cpu", seed: int = 0, tick: Tick | None = None) -> Matrix:
    from n2n_core.engine.noise import noise_at_level
    from n2n_core.engine.snapshots import load_network
    from n2n_core.evaluation.baselines import score_baseline
    from n2n_core.evaluation.protocol import torch_runner, validate

    base: dict[tuple[str, float], tuple[dict[str, float], dict[str, float]]] = {}
    cells: list[Cell] = []
    for snap_path in p.snapshots:
        net, snap = load_network(snap_path, device)
        run = torch_runner(net, device)
        for d in dict.fromkeys(p.datasets):
            images = p.images[d]
            for level in p.levels:
                noise = noise_at_level(p.noise, level)
                if (d, level) not in base:
                    scores, secs = {}, {}
                    for name in p.baselines:
                        b = score_baseline(name, images, noise, seed, tick)
                        scores[name], secs[name] = b.psnr, b.seconds
                    base[(d, level)] = (scores, secs)
                t0 = time.perf_counter()
                res = validate(run, images, noise, seed, tick=tick)
                scores, secs = base[(d, level)]
                cells.append(
                    Cell(
                        snapshot=str(snap_path),
                        step=snap.step,
                        dataset=d,
                        noise=p.noise,
                        level=level,
                        psnr=res.psnr,
                        input_psnr=res.input_psnr,
                        images=res.images,
                        baselines=dict(scores),
                        seconds={"network": time.perf_counter() - t0, **secs},
                        colour=res.colour,
                    )
                )
    m = Matrix(cells)
    best = m.best()["snapshot"]
    for c in cells:
        c.best = c.snapshot == best
    return m


def store(m: Matrix, run_dir: Path) -> bool:
    """Append the cells to the run's log as ``eval`` records; False while the run is training.

    A live run's log belongs to its trainer (a resume may rewrite it), so nothing
    is appended then.
    """
    from n2n_core.runs.info import effective_status, read_run_info
    from n2n_core.runs.writer import MetricsWriter

    if effective_status(read_run_info(run_dir)) == "running":
        return False
    path = RunPaths(run_dir).metrics
    try:
        with MetricsWriter(path) as w:
            for c in m.cells:
                w.eval(
                    step=c.step,
                    snapshot=Path(c.snapshot).name,
                    dataset=c.dataset,
                    noise=c.noise,
                    level=c.level,
                    psnr=c.psnr,
                    input_psnr=c.input_psnr,
                    images=c.images,
                    baselines=c.baselines,
                    seconds=c.seconds,
                    best=c.best,
                    colour=c.colour.to_json() if c.colour else None,
                )
    except OSError as e:
        raise UserError(f"{path}: cannot store the evaluation ({e.strerror or e})") from None
    m.run_dir, m.stored = run_dir, True
    return True
