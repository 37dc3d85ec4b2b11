"""A run's snapshots (and ONNX models frozen from them) with the PSNR measured at their step,
the latest validation of each, and the log line for results."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2n_core.records import EvalRecord
from n2n_core.runs import run_state

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

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def onnx(self) -> bool:
        return self.path.suffix == ".onnx"


def list_snapshots(run_dir: Path) -> list[Snapshot]:
    """Periodic snapshots by step, then ``final``; PSNR of the validation at that step."""
    folder = Path(run_dir) / "snapshots"
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
    return f"[{stamp}] n2n-tui validate {snapshot.name} on {dataset}: PSNR {psnr_s}{more}"


def append_log(run_dir: Path, line: str) -> None:
    with open(Path(run_dir) / "log.txt", "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
