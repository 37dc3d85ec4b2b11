"""Trained models in the box: ``builtin:photo`` and ``builtin:quickstart``.

Each is a package-data snapshot, ``n2n_core/pretrained/NAME.safetensors``: the
network weights stored as fp16 (computed in fp32 when loaded), the snapshot
metadata every command reads (preset, step, task, noise, network), and a
``builtin`` record of how it was made and what it measured: the preset, the steps,
the code commit, the command that retrains it, and its PSNR and colour shift on
``builtin:photos-holdout`` (and on any other data set it was scored on), measured
from the stored fp16 weights exactly as ``n2n-core validate`` scores them.

Every command that takes a snapshot takes ``builtin:NAME`` (``validate``,
``infer``, ``evaluate``, ``freeze`` and the TUI, through
:func:`resolve_snapshot`); ``n2n-core models`` lists them. This module is
torch-free (the TUI lists the models through it); :mod:`.pack` makes them from a
run folder (``benchmarks/make_builtin_models.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2n_core.errors import UserError

PREFIX = "builtin:"
# What `n2n-core infer` uses without --snapshot.
DEFAULT_MODEL = "photo"
# The data set every built-in model is scored on (the test reproduces each score).
HOLDOUT = "builtin:photos-holdout"


def models_dir() -> Path:
    return Path(__file__).resolve().parent


def is_builtin(spec: str | Path) -> bool:
    return str(spec).startswith(PREFIX)


def model_names() -> list[str]:
    try:
        return sorted(p.stem for p in models_dir().glob("*.safetensors") if p.is_file())
    except OSError:
        return []


def resolve_snapshot(spec: str | Path) -> Path:
    """The file a snapshot argument names: ``builtin:NAME`` is the packaged model, a path itself."""
    if not is_builtin(spec):
        return Path(spec)
    name = str(spec).removeprefix(PREFIX)
    names = model_names()
    if name not in names:
        have = ", ".join(PREFIX + n for n in names) or "none in this install"
        hint = " (builtin:photos… are data sets)" if name.startswith("photos") else ""
        raise UserError(f"{spec}: no such built-in model (have: {have}){hint}")
    return models_dir() / f"{name}.safetensors"


@dataclass(frozen=True)
class Score:
    """A built-in model's PSNR and colour shift on one data set, as recorded when it was made."""

    dataset: str
    psnr: float
    input_psnr: float | None
    colour_shift: float | None
    colour_shift_worst: float | None
    noise: str
    level: float | None
    seed: int
    images: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Score:
        def num(key: str) -> float | None:
            v = d.get(key)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

        psnr = num("psnr")
        if not isinstance(d.get("dataset"), str) or psnr is None:
            raise ValueError("a score needs a dataset and a psnr")
        return cls(
            dataset=d["dataset"],
            psnr=psnr,
            input_psnr=num("input_psnr"),
            colour_shift=num("colour_shift"),
            colour_shift_worst=num("colour_shift_worst"),
            noise=str(d.get("noise", "")),
            level=num("level"),
            seed=int(d.get("seed", 0)),
            images=int(d.get("images", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "noise": self.noise,
            "level": self.level,
            "seed": self.seed,
            "images": self.images,
            "psnr": self.psnr,
            "input_psnr": self.input_psnr,
            "colour_shift": self.colour_shift,
            "colour_shift_worst": self.colour_shift_worst,
        }


@dataclass(frozen=True)
class BuiltinModel:
    """A packaged model as ``n2n-core models`` and the TUI list it."""

    name: str
    path: Path
    size: int
    preset: str
    steps: int
    commit: str
    retrain: str
    dtype: str
    scores: tuple[Score, ...]

    @property
    def spec(self) -> str:
        return PREFIX + self.name

    def score(self, dataset: str = HOLDOUT) -> Score | None:
        return next((s for s in self.scores if s.dataset == dataset), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.spec,
            "path": str(self.path),
            "bytes": self.size,
            "preset": self.preset,
            "steps": self.steps,
            "commit": self.commit,
            "retrain": self.retrain,
            "dtype": self.dtype,
            "scores": [s.to_json() for s in self.scores],
        }


def read_model(name: str) -> BuiltinModel:
    """The record of ``builtin:NAME`` (its metadata only, no weights; torch-free)."""
    path = resolve_snapshot(PREFIX + name)
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = dict(f.metadata() or {})
        info = json.loads(raw["builtin"])
        scores = tuple(Score.from_json(s) for s in info.get("scores", []))
        return BuiltinModel(
            name=name,
            path=path,
            size=path.stat().st_size,
            preset=str(info["preset"]),
            steps=int(info["steps"]),
            commit=str(info.get("commit", "")),
            retrain=str(info.get("retrain", "")),
            dtype=str(info.get("dtype", "")),
            scores=scores,
        )
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{PREFIX}{name}: damaged built-in model {path} ({e})") from None
    except Exception:  # safetensors raises its own types for a damaged header
        raise UserError(f"{PREFIX}{name}: damaged built-in model {path}") from None


def list_models() -> list[BuiltinModel]:
    return [read_model(n) for n in model_names()]
