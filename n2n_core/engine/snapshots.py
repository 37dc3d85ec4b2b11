"""Snapshots: safetensors files holding weights and, for resuming, the whole training state.

Nothing here ever unpickles: tensors are read with safetensors, everything else
is JSON in the safetensors metadata. A snapshot holds

- ``net.*``: the network weights (all that ``validate``/``infer``/``freeze`` read);
- ``optim.*``: Adam's moments and step counts, per parameter;
- ``rng.torch``: the global torch RNG state; numpy's and Python's in metadata;
- metadata: format, step, the resolved preset, task, noise, targets, channels,
  the last validation PSNR, optimizer hyper-parameters, the loss scaler.

Writes are atomic (temp file, fsync, rename), so a crash or a full disk leaves
the previous snapshot intact.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from n2n_core.config.schema import PADDINGS, Preset
from n2n_core.errors import UserError
from n2n_core.files.atomic import atomic_write_bytes
from n2n_core.files.checks import looks_pickled, read_head
from n2n_core.pretrained import resolve_snapshot
from n2n_core.runs.layout import SNAPSHOT_RE, RunPaths

FORMAT = "n2n-snapshot/1"


def snapshot_name(step: int) -> str:
    return f"snapshot-{step:08d}.safetensors"


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP / torch.compile wrappers."""
    net = getattr(net, "module", net)
    return getattr(net, "_orig_mod", net)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "rng_numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
        "rng_python": json.dumps([py_state[0], list(py_state[1]), py_state[2]]),
    }
    return {"rng.torch": torch.get_rng_state()}, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if "rng_numpy" in meta:
        s = json.loads(meta["rng_numpy"])
        np.random.set_state((s[0], np.array(s[1], dtype=np.uint32), *s[2:]))
    if "rng_python" in meta:
        v, state, gauss = json.loads(meta["rng_python"])
        random.setstate((v, tuple(state), gauss))


def save_snapshot(
    path: str | Path,
    net: torch.nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
) -> Path:
    """Write a snapshot atomically. ``meta`` values are stored as JSON strings."""
    path = Path(path)
    net = unwrap(net)
    tensors: dict[str, torch.Tensor] = {
        f"net.{k}": v.detach().to("cpu", torch.float32).contiguous()
        for k, v in net.state_dict().items()
    }
    md: dict[str, str] = {"format": FORMAT}
    md.update({k: json.dumps(v) for k, v in meta.items()})
    if optimizer is not None:
        state = optimizer.state_dict()
        for idx, st in state["state"].items():
            for k, v in st.items():
                t = v if torch.is_tensor(v) else torch.tensor(v)
                tensors[f"optim.{idx}.{k}"] = t.detach().cpu().contiguous()
        groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
        md["optim_groups"] = json.dumps(groups)
        rng_t, rng_md = _rng_state()
        tensors.update(rng_t)
        md.update(rng_md)
    if scaler is not None and scaler.is_enabled():
        md["scaler"] = json.dumps(
            {k: v for k, v in scaler.state_dict().items() if not torch.is_tensor(v)}
        )
    atomic_write_bytes(path, st_save(tensors, metadata=md))
    return path


@dataclass
class Snapshot:
    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]  # decoded JSON values
    raw_meta: dict[str, str]

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        return {k[4:]: v for k, v in self.tensors.items() if k.startswith("net.")}

    @property
    def in_channels(self) -> int:
        w = self.tensors.get("net.enc_conv0.weight")
        return int(w.shape[1]) if w is not None else int(self.meta.get("in_channels", 3))

    @property
    def residual(self) -> bool:
        """Whether the network adds its input to its output (``network.residual``); older
        snapshots, without the key, are the paper's U-Net."""
        return self.meta.get("residual") is True

    @property
    def padding(self) -> str:
        """How the network's convolutions pad (``network.padding``); older snapshots,
        without the key, zero-pad as the paper."""
        return self.meta.get("padding", "zeros")

    @property
    def preset(self) -> dict[str, Any]:
        p = self.meta.get("preset")
        return p if isinstance(p, dict) else {}


def read_snapshot(path: str | Path, weights_only: bool = True) -> Snapshot:
    """Read a snapshot (a file, or ``builtin:NAME``); any problem with it is a ``UserError``
    naming it."""
    p = resolve_snapshot(path)
    head = read_head(p, "snapshot", "a .safetensors snapshot")
    # A safetensors file is an 8-byte header length, then a JSON header: "{" at byte 8.
    if head[8:9] != b"{" and looks_pickled(head):
        raise UserError(
            f"{p}: looks like a pickle / torch.save file; refusing to unpickle it (n2n reads safetensors only)"
        )
    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(p), framework="pt", device="cpu") as f:
            raw = dict(f.metadata() or {})
            for k in f.keys():
                if weights_only and not k.startswith("net."):
                    continue
                tensors[k] = f.get_tensor(k)
    except Exception:  # safetensors raises several types for damaged files
        raise UserError(f"{p}: not a valid safetensors snapshot (truncated or corrupt)") from None
    if raw.get("format") != FORMAT or not any(k.startswith("net.") for k in tensors):
        raise UserError(f"{p}: safetensors file is not an n2n snapshot (no n2n weights in it)")
    _check_tensors(p, tensors)
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
        except RecursionError:
            raise UserError(f"{p}: snapshot metadata {k!r} is nested too deeply") from None
    _check_meta(p, meta)
    return Snapshot(p, tensors, meta, raw)


def _check_tensors(p: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Weights and optimizer state must be finite floats: NaN/Inf weights give a black image
    and a meaningless score, integer or bool weights are not a trained network."""
    for k, t in tensors.items():
        if not (k.startswith("net.") or k.startswith("optim.")):
            continue
        if not t.is_floating_point():
            if k.startswith("optim.") and k.endswith(".step"):
                continue  # Adam's step count
            raise UserError(
                f"{p}: tensor {k} has dtype {str(t.dtype).removeprefix('torch.')}; "
                "n2n weights are floating point"
            )
        if not bool(torch.isfinite(t).all()):
            raise UserError(f"{p}: tensor {k} holds NaN or infinite values; refusing to use it")
    w = tensors.get("net.enc_conv0.weight")
    if w is not None and (w.ndim != 4 or w.shape[1] not in (1, 3)):
        raise UserError(
            f"{p}: first layer has shape {tuple(w.shape)}; n2n networks take 1 or 3 channels"
        )


# Metadata keys that commands read, with the JSON types they must have when present.
_META_TYPES: dict[str, tuple[type, ...]] = {
    "step": (int,),
    "task": (str,),
    "noise": (str,),
    "targets": (str,),
    "in_channels": (int,),
    "val_psnr": (int, float, type(None)),
    "world_size": (int,),
    "post_op": (str,),
    "preset": (dict,),
    "optim_groups": (list,),
    "scaler": (dict,),
    "rng_numpy": (list,),
    "rng_python": (list,),
    "builtin": (dict,),
}
_PRESET_SECTIONS = ("noise", "data", "network", "train", "runtime", "mri")


def _check_meta(p: Path, meta: dict[str, Any]) -> None:
    """Metadata of the wrong type is a damaged snapshot, named as such (not a crash later)."""
    for key, types in _META_TYPES.items():
        if key not in meta:
            continue
        v = meta[key]
        if isinstance(v, bool) or not isinstance(v, types):
            raise UserError(
                f"{p}: snapshot metadata {key!r} has the wrong type ({type(v).__name__})"
            )
    if not isinstance(meta.get("residual", False), bool):
        raise UserError(f"{p}: snapshot metadata 'residual' is not true or false")
    if meta.get("padding", "zeros") not in PADDINGS:
        raise UserError(f"{p}: snapshot metadata 'padding' is not one of {', '.join(PADDINGS)}")
    if meta.get("step", 0) < 0:
        raise UserError(f"{p}: snapshot metadata 'step' is negative")
    if meta.get("task", "image") not in ("image", "mri"):
        raise UserError(f"{p}: snapshot metadata 'task' is not image or mri")
    preset = meta.get("preset", {})
    for section in _PRESET_SECTIONS:
        if section in preset and not isinstance(preset[section], dict | None):
            raise UserError(f"{p}: snapshot metadata 'preset.{section}' is not a mapping")


def load_network(path: str | Path, device: str | torch.device = "cpu"):
    """(network, snapshot) ready for inference; wrong architecture is a ``UserError``."""
    from n2n_core.engine.network import UNet

    snap = read_snapshot(path)
    cin = snap.in_channels
    net = UNet(cin, residual=snap.residual, padding=snap.padding)
    try:
        net.load_state_dict(snap.weights, strict=True)
    except RuntimeError as e:
        first = str(e).split("\n")
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise UserError(
            f"{snap.path}: snapshot does not match the n2n U-Net ({detail[:160]})"
        ) from None
    net.to(device).eval()
    return net, snap


def restore_training_state(
    snap: Snapshot, net: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: Any = None
) -> None:
    """Put weights, Adam state, scaler and RNGs back exactly as they were saved."""
    try:
        _restore(snap, net, optimizer, scaler)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"{snap.path}: training state cannot be restored ({detail})") from None


def _restore(snap: Snapshot, net, optimizer, scaler) -> None:
    unwrap(net).load_state_dict(snap.weights, strict=True)
    groups = json.loads(snap.raw_meta.get("optim_groups", "[]"))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in snap.tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    if groups:
        current = optimizer.state_dict()
        for g, saved in zip(current["param_groups"], groups, strict=False):
            for key, val in saved.items():
                if key != "params":
                    g[key] = tuple(val) if key == "betas" else val
        current["state"] = state
        optimizer.load_state_dict(current)
        match_param_layouts(optimizer)
    if scaler is not None and "scaler" in snap.raw_meta and scaler.is_enabled():
        scaler.load_state_dict(json.loads(snap.raw_meta["scaler"]))
    restore_rng(snap.tensors, snap.raw_meta)


def match_param_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Every state tensor shaped like its parameter takes the parameter's layout.

    Snapshots store Adam's moments contiguous while channels-last weights are not;
    ``load_state_dict`` changes dtype and device, never layout, and CUDA's fused Adam
    requires params, grads and moments in one layout."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            for k, v in list(state.items()):
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    state[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def list_snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the periodic snapshots of a run, oldest first."""
    d = RunPaths(run_dir).snapshots
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = SNAPSHOT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def resume_point(run_dir: Path, preset: Preset):
    """The snapshot a resume continues from; a ``UserError`` when there is none."""
    snap, why = newest_resumable_snapshot(run_dir, preset)
    if snap is None:
        raise UserError(f"{run_dir}: no complete snapshot to resume from ({why}); start a new run")
    return snap


def newest_resumable_snapshot(run_dir: Path, preset: Preset | None = None):
    """(snapshot, "") for the newest periodic snapshot that reads back whole with its
    training state (a torn newest one is skipped), else (None, why there is none)."""
    found = list_snapshots(run_dir)
    damaged: list[str] = []
    weights_only = 0
    for _, path in reversed(found):
        try:
            snap = read_snapshot(path, weights_only=False)
        except UserError as e:
            damaged.append(str(e))
            continue
        if "optim_groups" in snap.raw_meta:
            return snap, ""
        weights_only += 1
    if not found:
        every = preset.train.snapshot_every if preset else None
        if every == 0:
            why = "train.snapshot_every is 0 and the run did not stop cleanly"
        elif every:
            why = f"the run ended before its first snapshot (train.snapshot_every: {every})"
        else:
            why = "no snapshots in snapshots/"
        return None, why
    parts = []
    if damaged:
        parts.append(f"{len(damaged)} damaged (newest: {damaged[0]})")
    if weights_only:
        parts.append(f"{weights_only} without training state")
    return None, f"of its {len(found)} snapshot(s), " + " and ".join(parts)
