"""Making a built-in model from a finished run: fp16 weights, its record, its measured scores.

:func:`pack_run` reads the run's ``snapshots/final.safetensors``, stores the network
weights as fp16 (about 2 MB instead of 12 MB with the optimizer state), keeps the
snapshot metadata every command reads, and adds the ``builtin`` record
(:mod:`n2n_core.pretrained`). Its scores are measured from the fp16 weights as
stored -- loaded into the fp32 network, full fp32 math on the CPU, validation
noise from seed 0 -- which is exactly what ``n2n-core validate --snapshot
builtin:NAME`` computes, so the test that re-scores each model finds them again.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

from n2n_core.errors import UserError
from n2n_core.files.atomic import atomic_write_bytes
from n2n_core.pretrained import HOLDOUT, Score
from n2n_core.runs.layout import RunPaths

# Snapshot metadata that only resuming reads: not carried into a built-in model.
TRAINING_ONLY = ("optim_groups", "rng_numpy", "rng_python", "scaler")


def score_snapshot(path: str | Path, dataset: str, label: str = "", seed: int = 0) -> Score:
    """PSNR and colour shift of a snapshot on ``dataset`` at its own validation noise,
    computed as ``n2n-core validate`` computes it (CPU, full fp32 math); recorded
    under ``label`` (default: the data set as given)."""
    from n2n_core.data.sources import open_val
    from n2n_core.engine.device import compute_device
    from n2n_core.engine.noise import default_level, validation_noise
    from n2n_core.engine.snapshots import load_network
    from n2n_core.evaluation.protocol import torch_runner, validate

    device = compute_device("cpu", "high_precision")
    net, snap = load_network(path, device)
    if snap.meta.get("task") == "mri":
        raise UserError(f"{path}: an MRI snapshot is not a built-in image denoiser")
    noise = validation_noise(None, snap.meta, str(path))
    res = validate(torch_runner(net, device), open_val(dataset, snap.in_channels), noise, seed)
    kind = str(snap.meta.get("noise") or "gaussian")
    return Score(
        dataset=label or dataset,
        psnr=res.psnr,
        input_psnr=res.input_psnr,
        colour_shift=res.colour.mean_abs if res.colour else None,
        colour_shift_worst=res.colour.worst if res.colour else None,
        noise=res.noise,
        level=default_level(kind, snap.preset.get("noise")),
        seed=seed,
        images=res.images,
    )


def _fp16_weights(snap) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in snap.tensors.items():
        if not k.startswith("net."):
            continue
        half = v.to(torch.float16).contiguous()
        if not bool(torch.isfinite(half).all()):
            raise UserError(f"{snap.path}: tensor {k} does not fit in fp16 (values beyond 65504)")
        out[k] = half
    return out


def _file_bytes(
    tensors: dict[str, torch.Tensor], raw_meta: dict[str, str], record: dict[str, Any]
) -> bytes:
    meta = {k: v for k, v in raw_meta.items() if k not in TRAINING_ONLY}
    meta["builtin"] = json.dumps(record, sort_keys=True)
    return st_save(tensors, metadata=meta)


def pack_run(
    run_dir: str | Path,
    name: str,
    out: str | Path,
    preset: str,
    commit: str,
    retrain: str,
    datasets: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """Write ``run_dir``'s final snapshot as the built-in model ``out``; returns its record
    (``preset``: the name of the preset it was trained with, as ``n2n-core run`` finds it).

        Scored on :data:`HOLDOUT` and on each of ``datasets`` ((label, folder) pairs); the file is written only
        once every score is measured, and read back and re-scored on the holdout photo
        to check that the stored weights give the recorded number.
    """
    from n2n_core.engine.snapshots import read_snapshot

    final = RunPaths(run_dir).final_snapshot
    if not final.is_file():
        raise UserError(f"{run_dir}: no snapshots/final.safetensors (has the run finished?)")
    snap = read_snapshot(final)
    tensors = _fp16_weights(snap)
    record: dict[str, Any] = {
        "name": name,
        "preset": preset,
        "steps": snap.step,
        "commit": commit,
        "retrain": retrain,
        "dtype": "float16",
        "source_run": Path(run_dir).resolve().name,
        "scores": [],
    }
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / f"{name}.safetensors"
        draft.write_bytes(_file_bytes(tensors, snap.raw_meta, record))
        scores = [score_snapshot(draft, HOLDOUT)]
        scores += [score_snapshot(draft, spec, label) for label, spec in datasets]
    record["scores"] = [s.to_json() for s in scores]
    atomic_write_bytes(out, _file_bytes(tensors, snap.raw_meta, record))
    again = score_snapshot(out, HOLDOUT)
    if again.psnr != scores[0].psnr:
        raise RuntimeError(
            f"{out}: re-scored {again.psnr!r} dB on {HOLDOUT}, recorded {scores[0].psnr!r}"
        )
    return record
