"""Which engine runs inference (``infer --engine``), and the one this machine chose.

The engines, all reading the same weights:

- ``torch``: PyTorch fp32 (exact: what ``validate`` computes);
- ``onnx``: onnxruntime fp32 on the exported graph (exact to float rounding);
- ``torch-bf16``: PyTorch in bf16 with oneDNN's fused convolutions
  (:class:`~n2n_core.engine.network.FusedBf16`);
- ``openvino``: OpenVINO's CPU plugin on the exported ONNX graph (the ``openvino``
  extra), in bf16 where the CPU computes it natively, else fp32.

``auto`` on the CPU takes what ``n2n-core bench`` measured fastest on this machine
(recorded in ``~/.cache/n2n/infer-engine.json`` with the CPU and the library versions
it was measured with; any change and the record is not used). Without a record: on a
CPU with native bf16, ``openvino`` when installed, else ``torch-bf16``; elsewhere
``onnx``, as before. On an accelerator, ``torch``.
"""

from __future__ import annotations

import json
import os
import stat
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from n2n_core.errors import UserError

if TYPE_CHECKING:  # the CLI's parser reads ENGINES: no torch at import
    from n2n_core.evaluation.protocol import Runner

CPU_ENGINES = ("torch", "onnx", "torch-bf16", "openvino")
ENGINES = ("auto", *CPU_ENGINES)
# Exact engines: fp32 arithmetic throughout.
FP32_ENGINES = ("torch", "onnx")
CHOICE_FILE = Path.home() / ".cache" / "n2n" / "infer-engine.json"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def installed(engine: str) -> bool:
    """Whether ``engine`` can run on this machine's CPU."""
    if engine == "onnx":
        return _version("onnxruntime") is not None
    if engine == "openvino":
        return _version("openvino") is not None
    if engine == "torch-bf16":
        import torch

        from n2n_core.engine.device import native_bf16
        from n2n_core.engine.network import fused_bf16_available

        return fused_bf16_available() and native_bf16(torch.device("cpu"))
    return engine == "torch"


def machine_key() -> dict:
    """What a recorded choice was measured on: any difference and it is measured again."""
    import torch

    from n2n_core.runs.provenance import cpu_flags, cpu_model

    flags = sorted(f for f in cpu_flags() if f.startswith(("amx", "avx512")))
    return {
        "cpu": cpu_model(),
        "flags": flags,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
    }


def record_choice(ms: dict[str, float], path: Path | None = None) -> str:
    """Record the fastest of the measured engines (ms per image) for ``auto``; its name."""
    from n2n_core.files.atomic import atomic_write_text

    path = path or CHOICE_FILE
    best = min(ms, key=ms.get)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine_key(), "ms": ms, "choice": best}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return best


def recorded_choice(path: Path | None = None) -> str | None:
    """The engine ``n2n-core bench`` chose on this machine, if the record still holds."""
    path = path or CHOICE_FILE
    try:
        st = path.lstat()
        # Only a plain file of ours: a link, a FIFO (which would block the read) or a
        # huge file is no record.
        if not stat.S_ISREG(st.st_mode) or st.st_size > 65536:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("machine") != machine_key():
        return None
    choice = record.get("choice")
    return choice if choice in CPU_ENGINES and installed(choice) else None


def auto_engine(device_type: str) -> str:
    """What ``--engine auto`` runs on ``device_type`` (see the module's docstring)."""
    if device_type != "cpu":
        return "torch"
    if os.environ.get("N2N_INFER_ENGINE") in CPU_ENGINES:  # tests, and users who know
        return os.environ["N2N_INFER_ENGINE"]
    choice = recorded_choice()
    if choice:
        return choice
    if installed("torch-bf16"):  # native bf16 here
        return "openvino" if installed("openvino") else "torch-bf16"
    return "onnx" if installed("onnx") else "torch"


def engine_runner(net, channels: int, device, engine: str) -> Runner:
    """A runner for ``net`` (fp32, on ``device``) on ``engine`` (not ``auto``)."""
    import torch

    from n2n_core.evaluation.protocol import torch_runner

    if engine == "torch":
        return torch_runner(net, device)
    if device.type != "cpu" and engine in ("torch-bf16", "openvino"):
        raise UserError(f"--engine {engine} runs on the CPU only; use --engine torch")
    if not installed(engine):
        extra = {"openvino": "pip install 'n2n[openvino]'", "onnx": "pip install onnxruntime"}
        hint = extra.get(engine, "it needs a CPU with native bf16 (AMX or AVX-512 BF16)")
        raise UserError(f"--engine {engine}: not available here ({hint})")
    if engine == "onnx":
        from n2n_core.evaluation.onnx import onnx_runner_for_net

        return onnx_runner_for_net(net, channels, device.type)
    if engine == "openvino":
        from n2n_core.engine.device import native_bf16
        from n2n_core.evaluation.onnx import openvino_runner_for_net

        precision = "bf16" if native_bf16(torch.device("cpu")) else "fp32"
        return openvino_runner_for_net(net, channels, precision)
    from n2n_core.engine.network import FusedBf16

    fused = FusedBf16(net.float().cpu().eval())

    def run(batch):
        with torch.inference_mode():
            return fused(torch.from_numpy(batch)).numpy()

    return run
