"""Freezing a snapshot to ONNX, and running a frozen model with onnxruntime.

The frozen graph is the bare U-Net with dynamic batch, height and width: the
reflect-padding to a multiple of 32 and the crop back stay outside the graph, in
:func:`evaluate.infer_float`, so a frozen model goes through exactly the same
validation protocol as a snapshot (:func:`evaluate.validate`). What the model was
trained for (noise, targets, step, preset, validation PSNR) travels in the ONNX
file's ``metadata_props``, all values as strings (JSON where not plain text).

TensorRT and Ascend's ATC read the same file (docs/deploying.md).
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from n2n_core.errors import UserError
from n2n_core.evaluation.protocol import Runner, ValResult
from n2n_core.files.checks import looks_pickled, read_head

FROZEN_FORMAT = "n2n-frozen/1"
OPSET = 17
INPUT, OUTPUT = "input", "output"
_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


# ---------------------------------------------------------------------------
# export


def export_bytes(net, in_channels: int) -> bytes:
    """The serialized ONNX graph of a U-Net (no metadata yet)."""
    import torch

    net = net.to("cpu", torch.float32).eval()
    # Any multiple of 32 traces the same graph; the axes are declared dynamic.
    dummy = torch.zeros(1, in_channels, 64, 64)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which
        # needs the extra `onnxscript` package; for this plain conv net both give
        # the same graph, so we keep the dependency list short.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (dummy,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: _DYNAMIC, OUTPUT: _DYNAMIC},
            do_constant_folding=True,
        )
    return buf.getvalue()


def frozen_metadata(snap) -> dict[str, str]:
    """``metadata_props`` of a model frozen from ``snap`` (a :class:`snapshots.Snapshot`)."""
    meta = snap.meta
    preset = snap.preset
    val_psnr = meta.get("val_psnr")
    props = {
        "n2n_format": FROZEN_FORMAT,
        "task": str(meta.get("task") or preset.get("task") or "image"),
        "noise": str(meta.get("noise") or (preset.get("noise") or {}).get("type") or ""),
        "targets": str(meta.get("targets") or preset.get("targets") or ""),
        "step": str(snap.step),
        "preset_name": str(preset.get("name") or ""),
        "in_channels": str(snap.in_channels),
        "preset": json.dumps(preset, sort_keys=True),
        "source_snapshot": snap.path.name,
    }
    if isinstance(val_psnr, int | float):
        props["val_psnr"] = f"{float(val_psnr):.2f}"
    return props


def freeze(snapshot: str | Path, out: str | Path) -> Path:
    """Write ``snapshot``'s network as an ONNX model at ``out`` (atomically); returns ``out``."""
    import onnx

    from n2n_core.engine.snapshots import load_network
    from n2n_core.files.atomic import atomic_write_bytes

    out = Path(out)
    if out.is_dir():
        raise UserError(f"{out}: is a folder; --out needs a file name such as model.onnx")
    if not out.parent.exists():
        raise UserError(f"{out.parent}: output folder not found")
    net, snap = load_network(snapshot, "cpu")
    model = onnx.load_from_string(export_bytes(net, snap.in_channels))
    model.producer_name = "n2n"
    model.doc_string = (
        "Noise2Noise U-Net. Input: float32 (N, C, H, W) in [-0.5, 0.5], H and W "
        "multiples of 32 (reflect-pad bottom/right, crop the output back)."
    )
    for key, value in frozen_metadata(snap).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    try:
        atomic_write_bytes(out, model.SerializeToString())
    except OSError as e:
        raise UserError(f"{out}: cannot write model ({e.strerror or e})") from None
    return out


# ---------------------------------------------------------------------------
# onnxruntime


@dataclass
class FrozenModel:
    path: str
    runner: Runner
    channels: int
    meta: dict[str, Any]  # metadata_props, JSON values decoded


def providers_for(device_type: str) -> list[str]:
    """onnxruntime's execution providers for a device; a device it cannot run on here is a
    UserError (never a silent fall back to the CPU)."""
    if device_type == "cpu":
        return ["CPUExecutionProvider"]
    import onnxruntime as ort

    want = {"cuda": "CUDAExecutionProvider", "npu": "CANNExecutionProvider"}.get(device_type)
    if want is None or want not in ort.get_available_providers():
        raise UserError(
            f"--engine onnx on {device_type}: this onnxruntime has no "
            f"{want or 'provider for it'} (install onnxruntime-gpu for CUDA); "
            "use --engine torch, or --device cpu"
        )
    return [want, "CPUExecutionProvider"]


def _session(model: bytes | str, name: str, providers: list[str] | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = (
        4  # fatal only: errors come back as exceptions, warnings would be noise
    )
    try:
        return ort.InferenceSession(
            model, sess_options=opts, providers=providers or ["CPUExecutionProvider"]
        )
    except Exception as e:  # ORT raises InvalidProtobuf, Fail, InvalidGraph, ...
        detail = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"{name}: not a valid ONNX model ({detail})") from None


def _runner(session, name: str) -> tuple[Runner, int]:
    """A runner for an n2n image model; ``name`` (the file) is blamed for whatever goes wrong.

    The model must take one (N, C, H, W) input with 1 or 3 channels and give back
    an output of exactly its input's shape: a model that changes the size would
    otherwise be cropped to a wrong-sized image without a word.
    """
    inputs = session.get_inputs()
    shape = inputs[0].shape if len(inputs) == 1 else []
    if len(shape) != 4 or not isinstance(shape[1], int) or shape[1] < 1:
        raise UserError(
            f"{name}: not an n2n image model (expected one (N, C, H, W) input, "
            f"got {[i.shape for i in inputs][:4]})"
        )
    if shape[1] not in (1, 3):
        raise UserError(f"{name}: model input declares {shape[1]} channels; n2n images have 1 or 3")
    input_name = inputs[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        try:
            out = session.run(None, {input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        except Exception as e:  # ORT raises Fail, InvalidArgument, RuntimeException (no memory)
            detail = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
            raise UserError(f"{name}: model failed on a {batch.shape} input ({detail})") from None
        if getattr(out, "shape", None) != batch.shape:
            raise UserError(
                f"{name}: model turns a {tuple(batch.shape)} input into a "
                f"{tuple(getattr(out, 'shape', ()))} output; n2n models keep the size"
            )
        return out

    return run, int(shape[1])


def _check_file(p: Path) -> None:
    """Refuse what is plainly not an ONNX file before handing it to onnxruntime."""
    head = read_head(p, "model", "an .onnx model file")
    if looks_pickled(head):
        raise UserError(f"{p}: looks like a pickle / torch.save file, not an ONNX model")
    if len(head) > 8 and head[8:9] == b"{" and p.suffix == ".safetensors":
        raise UserError(f"{p}: is a snapshot; freeze it first: n2n-core freeze --snapshot {p}")


def open_frozen(model_path: str | Path) -> FrozenModel:
    """A frozen model ready to run; anything wrong with the file is a ``UserError`` naming it."""
    p = Path(model_path)
    _check_file(p)
    session = _session(str(p), str(p))
    run, channels = _runner(session, str(p))
    meta: dict[str, Any] = {}
    for k, v in session.get_modelmeta().custom_metadata_map.items():
        try:
            meta[k] = json.loads(v) if k in ("preset", "step", "val_psnr", "in_channels") else v
        except ValueError:
            meta[k] = v
    return FrozenModel(str(p), run, channels, meta)


def onnx_runner(model_path: str | Path) -> tuple[Runner, int]:
    """(runner, channels) for a frozen ONNX model on onnxruntime's CPU provider."""
    fm = open_frozen(model_path)
    if fm.meta.get("task") == "mri":
        raise UserError(
            f"{model_path}: an MRI model reconstructs k-space; "
            "use `n2n-core validate-frozen` on MRI slices"
        )
    return fm.runner, fm.channels


def onnx_runner_for_net(net, channels: int, device_type: str = "cpu") -> Runner:
    """A runner for an in-memory network through onnxruntime (``infer --engine onnx``)."""
    providers = providers_for(device_type)
    session = _session(export_bytes(net, channels), "(in-memory ONNX export)", providers)
    return _runner(session, "(in-memory ONNX export)")[0]


def validate_frozen(
    model: str | Path, dataset_dir: str | Path, noise: str | None = None, seed: int = 0
) -> ValResult:
    """``validate`` for a frozen model: same images, same noise draws, same PSNR protocol.

    The noise defaults to the one recorded in the model's metadata (and its
    ``val_*`` parameters from the preset), exactly as ``validate`` does for a snapshot.
    """
    fm = open_frozen(model)
    if fm.meta.get("task") == "mri":
        from n2n_core.tasks.mri.validation import validate_mri_frozen

        return validate_mri_frozen(fm.runner, fm.meta, dataset_dir, seed)
    from n2n_core.data.sources import open_val
    from n2n_core.engine.noise import validation_noise
    from n2n_core.evaluation.protocol import validate

    images = open_val(str(dataset_dir), fm.channels)
    return validate(fm.runner, images, validation_noise(noise, fm.meta, str(model)), seed)


def openvino_runner_for_net(net, channels: int, precision: str, shapes: int = 4) -> Runner:
    """A runner for an in-memory network through OpenVINO's CPU plugin (``--engine openvino``),
    from the same ONNX graph as onnxruntime's. ``precision`` ``bf16`` runs on the CPU's bf16
    units (AMX, AVX-512 BF16); ``fp32`` keeps fp32 math.

    The graph is compiled for each input shape it meets (the last ``shapes`` kept):
    OpenVINO's kernels for a static shape are faster than its dynamic-shape ones, and a
    folder of photos from one camera is one shape.
    """
    from collections import OrderedDict

    import openvino as ov

    core = ov.Core()
    onnx_model = export_bytes(net, channels)
    config = {"INFERENCE_PRECISION_HINT": {"bf16": "bf16", "fp32": "f32"}[precision]}
    requests: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def request_for(shape: tuple[int, ...]):
        if shape in requests:
            requests.move_to_end(shape)
            return requests[shape]
        model = core.read_model(onnx_model, b"")
        model.reshape(list(shape))
        requests[shape] = core.compile_model(model, "CPU", config).create_infer_request()
        while len(requests) > shapes:
            requests.popitem(last=False)
        return requests[shape]

    def run(batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        out = request_for(batch.shape).infer({0: batch})[0]
        return np.array(out)  # the request reuses its output buffer on the next call

    return run
