"""A run folder's layout: every file name in one place, :class:`RunPaths`.

::

    results/00042-name/
      preset.yaml  run.json  metrics.jsonl  log.txt  .lock  code.diff (a dirty checkout's)
      snapshots/snapshot-00002000.safetensors ... final.safetensors
      samples/step-00002000-<image>.png
      tensorboard/

Only rank 0 writes; everything else reads, and no command writes over these
files of another run (:func:`run_file_owner`, used by the one output check).
A leaf: no imports of ours.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PRESET_FILE = "preset.yaml"
RUN_JSON = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
SNAPSHOTS_DIR = "snapshots"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
FINAL_SNAPSHOT = "final.safetensors"
LOCK_FILE = ".lock"
# A dirty checkout's `git diff HEAD` at the run's start (runs/provenance.py).
CODE_DIFF = "code.diff"
SNAPSHOT_RE = re.compile(r"^snapshot-(\d{8})\.safetensors$")
SAMPLE_RE = re.compile(r"^step-(\d{8})-(.+)\.png$")
# What the run folder itself holds; none is ever written by anyone but the run.
OWN_NAMES = frozenset(
    {PRESET_FILE, RUN_JSON, METRICS_FILE, LOG_FILE, LOCK_FILE, CODE_DIFF}
    | {SNAPSHOTS_DIR, SAMPLES_DIR, TENSORBOARD_DIR}
)

# A sweep (n2n_core.sweeps.store) lives in RESULTS/sweeps/NNNNN-name/; each of its points
# is a run folder whose run.json names it "sweeps/NNNNN-name". Its scheduler holds
# SCHEDULER_LOCK there for its life: a point of a sweep that some process schedules is
# never deleted under it.
SWEEPS_DIR = "sweeps"
SCHEDULER_LOCK = "scheduler.lock"


@dataclass(frozen=True)
class RunPaths:
    """Where each part of the run folder ``root`` lives."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def preset(self) -> Path:
        return self.root / PRESET_FILE

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def code_diff(self) -> Path:
        return self.root / CODE_DIFF

    @property
    def snapshots(self) -> Path:
        return self.root / SNAPSHOTS_DIR

    @property
    def final_snapshot(self) -> Path:
        return self.snapshots / FINAL_SNAPSHOT

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES_DIR

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_DIR


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` looks like a run folder (its run.json, or preset and metrics)."""
    p = Path(path)
    try:
        return (p / RUN_JSON).is_file() or (
            (p / PRESET_FILE).is_file() and (p / METRICS_FILE).exists()
        )
    except OSError:
        return False


def run_file_owner(path: str | Path) -> Path | None:
    """The run folder whose own file ``path`` is (after links), or None.

    A run's own files: those named in its folder (preset.yaml, run.json,
    metrics.jsonl, log.txt, .lock, code.diff and the snapshots/ samples/ tensorboard/
    folders), its snapshots (``snapshot-*.safetensors``, ``final.safetensors``),
    its validation samples (``step-*.png``) and its TensorBoard events. What
    other commands add beside them (an ONNX model frozen from a snapshot, a
    denoised picture from the TUI) is not the run's own.
    """
    real = Path(os.path.realpath(path))
    parent = real.parent
    if real.name in OWN_NAMES and is_run_folder(parent):
        return parent
    if is_run_folder(real):
        return real
    grand = parent.parent
    if parent.name == SNAPSHOTS_DIR and (
        SNAPSHOT_RE.match(real.name) or real.name == FINAL_SNAPSHOT
    ):
        return grand if is_run_folder(grand) else None
    if parent.name == SAMPLES_DIR and SAMPLE_RE.match(real.name):
        return grand if is_run_folder(grand) else None
    if parent.name == TENSORBOARD_DIR:
        return grand if is_run_folder(grand) else None
    return None
