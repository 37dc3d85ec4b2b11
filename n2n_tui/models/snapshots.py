"""A run's snapshots (and ONNX models frozen from them) with the PSNR measured at their step,
the latest validation of each, and the log line for results; beside them the built-in
models (``builtin:NAME``), to denoise with or to compare a run against."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2n_core import formatting as fmt
from n2n_core.errors import UserError
from n2n_core.files.safe import open_append
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.records import EvalRecord
from n2n_core.runs.summary import run_state

from .procs import run_core

SNAP_RE = re.compile(r"^snapshot-(\d+)\.(safetensors|onnx)$")
KINDS = (".safetensors", ".onnx")


@dataclass(frozen=True)
class Snapshot:
    path: Path
    step: int | None
    psnr: float | None
    size: int
    mtime: float
    validated: EvalRecord | None = None  # the latest validation of this file
    builtin: str | None = None  # "builtin:photo" for a model shipped with n2n

    @property
    def name(self) -> str:
        return self.builtin or self.path.name

    @property
    def ref(self) -> Path:
        """What the commands are given: the file, or ``builtin:NAME``."""
        return Path(self.builtin) if self.builtin else self.path

    @property
    def onnx(self) -> bool:
        return self.path.suffix == ".onnx"


def list_snapshots(run_dir: Path) -> list[Snapshot]:
    """Periodic snapshots by step, then ``final``; PSNR of the validation at that step."""
    folder = RunPaths(run_dir).snapshots
    try:
        files = [p for p in folder.iterdir() if p.suffix in KINDS]
    except OSError:
        return []
    state = run_state(run_dir)
    val = state.val_psnr
    last_step, last_psnr = state.values.step, state.values.psnr
    latest = {e.snapshot: e for e in state.evals.values()}  # file order: the last wins
    out = []
    for p in files:
        m = SNAP_RE.match(p.name)
        try:
            st = p.stat()
        except OSError:
            continue
        if m:
            step = int(m.group(1))
            psnr = val.get(step)
        elif p.stem == "final":
            step, psnr = last_step or None, last_psnr
        else:
            step, psnr = None, None
        out.append(Snapshot(p, step, psnr, st.st_size, st.st_mtime, latest.get(p.name)))
    # By step, each ONNX model right after the weights it was frozen from.
    out.sort(key=lambda s: (s.path.stem == "final", s.step or 0, s.onnx, s.name))
    return out


def builtin_models() -> list[Snapshot]:
    """The models shipped with n2n, each with the score recorded when it was made
    (on ``builtin:photos-holdout``) as its validation."""
    from n2n_core.pretrained import HOLDOUT, list_models

    try:
        models = list_models()
    except UserError:
        return []
    out = []
    for m in models:
        score = m.score(HOLDOUT)
        try:
            mtime = m.path.stat().st_mtime
        except OSError:
            continue
        rec = None
        if score is not None:
            rec = EvalRecord(
                step=m.steps,
                time=mtime,
                snapshot=m.spec,
                dataset=score.dataset,
                noise=score.noise,
                level=score.level,
                psnr=score.psnr,
                input_psnr=score.input_psnr,
                images=score.images,
            )
        out.append(Snapshot(m.path, m.steps, None, m.size, mtime, rec, builtin=m.spec))
    return out


def validation_line(
    snapshot: Path, dataset: str | Path, result: dict[str, Any], when: float
) -> str:
    """The line appended to the run's log.txt after a validation from the TUI."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    psnr = result.get("psnr")
    psnr_s = f"{psnr:.2f} dB" if isinstance(psnr, int | float) else "?"
    extras = []
    for key in ("images", "noise", "seed"):
        if key in result:
            extras.append(f"{key} {result[key]}")
    more = f" ({', '.join(extras)})" if extras else ""
    return (
        f"[{stamp}] n2n-tui validate {snapshot.name} on {dataset}: PSNR {psnr_s}{more}"
        f"{colour_text(result)}"
    )


def colour_text(result: dict[str, Any]) -> str:
    """``, colour shift 0.72 (worst -2.30 G in x.png)`` from a ``validate --json`` result."""
    mean, worst = result.get("colour_shift"), result.get("colour_shift_worst")
    if not isinstance(mean, int | float) or not isinstance(worst, int | float):
        return ""
    channel, image = (
        result.get("colour_shift_worst_channel"),
        result.get("colour_shift_worst_image"),
    )
    where = {
        "channel": channel if isinstance(channel, str) else None,
        "image": image if isinstance(image, str) else None,
    }
    return ", colour shift " + fmt.colour_shift(mean, worst, **where)


def append_log(run_dir: Path, line: str) -> None:
    with open_append(RunPaths(run_dir).log, "the run's log") as f:
        f.write(line.rstrip("\n") + "\n")


def newest_snapshot(run_dir: Path, kind: str = ".safetensors") -> Snapshot | None:
    """The final snapshot, else the latest periodic one, of one kind (``.safetensors``
    weights or ``.onnx`` models), so that runs compared run the same kind of model."""
    snaps = [s for s in list_snapshots(run_dir) if s.path.suffix == kind]
    return snaps[-1] if snaps else None


KIND_NAMES = {".safetensors": "weights (.safetensors, run by PyTorch)", ".onnx": "ONNX models"}


def infer_out(run_dir: Path, image: Path, snapshot: Path) -> Path:
    """Where the TUI writes a denoised image: the run's samples/ (a folder for a folder)."""
    samples = RunPaths(run_dir).samples
    tag = snapshot.stem.replace(":", "-") + ("-onnx" if snapshot.suffix == ".onnx" else "")
    if image.is_dir():
        return samples / f"infer-{tag}"
    return samples / f"infer-{image.stem}-{tag}.png"


def denoise_each(image: Path, jobs: list[tuple[Path, Path]]) -> str | None:
    """``n2n-core infer`` (``infer-frozen`` for ONNX) of ``image`` with each (snapshot, out);
    the first failure, or None.

    Blocking: call it from a worker.
    """
    for snapshot, out in jobs:
        try:
            (out if image.is_dir() else out.parent).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"{out}: {e.strerror}"
        # An ONNX model frozen from a snapshot runs through the frozen command.
        if snapshot.suffix == ".onnx":
            args = ["infer-frozen", "--model", str(snapshot)]
        else:
            args = ["infer", "--snapshot", str(snapshot)]
        res = run_core([*args, "--image", str(image), "--out", str(out)])
        if not res.ok:
            return f"{snapshot.name}: {res.error_line()}"
    return None
