"""A run folder's layout: every file name in one place, :class:`RunPaths`.

::

    results/00042-name/
      preset.yaml  run.json  metrics.jsonl  log.txt  .lock
      snapshots/snapshot-00002000.safetensors ... final.safetensors
      samples/step-00002000-<image>.png
      tensorboard/

Only rank 0 writes; everything else reads. A leaf: no imports of ours.
"""

from __future__ import annotations

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
