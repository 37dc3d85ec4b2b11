"""What produced a run: code, versions, machine, knobs and data (run.json's ``provenance``).

Collected once, by the launcher of a run that starts at step 0 (rank 0's
process; a sweep's point when its ``resume`` starts it), and cheaply: nothing
heavy is imported to learn a version (``importlib.metadata`` and the files a
package ships say it), git runs with a timeout and no shell, and a folder of
data is identified by its listing (names and sizes), never by reading the
images. Rank 0 adds what only a process with torch loaded can say
(:func:`torch_state`: threads, math flags, the device's name) under ``torch``.

``provenance`` is a JSON object of sections, each a flat object of plain values
(see docs/ARCHITECTURE.md for the fields). :func:`provenance_diff` compares two
of them key by key (``n2n-core diff``, ``n2n-core rerun``). Torch-free: the TUI
and every reader may import this module.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from n2n_core.config.diff import ABSENT, flat_keys
from n2n_core.files.atomic import atomic_write_bytes
from n2n_core.files.checks import is_regular_file
from n2n_core.process.ompenv import cpu_cores
from n2n_core.runs.layout import RunPaths
from n2n_core.version import package_version

# The environment variables that change a run's numbers or its speed: threads and how
# they wait (process/ompenv.py), which devices a process sees, math modes and
# determinism switches of cuBLAS/cuDNN/oneDNN/CANN, the allocator.
KNOBS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "KMP_AFFINITY",
    "OMP_PROC_BIND",
    "OMP_PLACES",
    "N2N_OMP_DECIDED",
    "CUDA_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES",
    "ASCEND_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_LAUNCH_BLOCKING",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "PYTORCH_CUDA_ALLOC_CONF",
    "ONEDNN_DEFAULT_FPMATH_MODE",
    "DNNL_DEFAULT_FPMATH_MODE",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "ASCEND_LAUNCH_BLOCKING",
    "HCCL_DETERMINISTIC",
    "PYTHONHASHSEED",
)
# Distributions whose version is recorded: the engine's numbers, the decoders of the
# data (Pillow, scikit-image's photos), the frozen-model runner, Ascend's torch.
PACKAGES = {
    "torch": ("torch",),
    "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "torch_npu": ("torch_npu", "torch-npu"),
    "pillow": ("pillow",),
    "scikit_image": ("scikit-image",),
}
# CPU feature flags worth a line: the vector width oneDNN picks and native bf16.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "sve", "bf16")
# The ones that mean bf16 matrix math in hardware: `auto` precision is bf16 there (engine.device).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
INFO_FILE = "ascend_toolkit_install.info"
GIT_TIMEOUT_S = 2.0
# A dirty checkout's diff is saved up to this many bytes (a diff larger than that is a
# checkout nobody reproduces from a file anyway; its head still says what was changed).
DIFF_CAP = 1 << 20
# A folder of data is identified by at most this many entries (a bigger one says so).
LISTING_CAP = 200_000
HEAD_BYTES = 1 << 20
SECTIONS = ("code", "versions", "host", "knobs", "data", "torch")


# ---------------------------------------------------------------------------
# the machine


def _cpuinfo() -> tuple[str | None, set[str]]:
    """(model name, feature flags) from /proc/cpuinfo's first processor; (None, {}) elsewhere."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if model is None and key in ("model name", "Model", "Hardware"):
                    model = value.strip() or None
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                elif not line.strip() and model is not None and flags:
                    break
    except OSError:
        pass
    return model, flags


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them; empty where they cannot be read."""
    return _cpuinfo()[1]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; else what the platform says)."""
    import platform

    return _cpuinfo()[0] or platform.processor() or platform.machine()


def _nvidia_gpus(proc: Path = Path("/proc/driver/nvidia")) -> tuple[list[str], str | None]:
    """(model of each NVIDIA GPU, driver version) from the driver's /proc files: no
    library loaded, no process started."""
    models = []
    root = proc / "gpus"
    try:
        for gpu in sorted(root.iterdir()):
            try:
                text = (gpu / "information").read_text(errors="replace")[:4096]
            except OSError:
                continue
            m = re.search(r"^Model:\s*(.+)$", text, re.M)
            models.append(m.group(1).strip() if m else "unknown")
    except OSError:
        pass
    driver = None
    try:
        text = (proc / "version").read_text(errors="replace")[:4096]
        m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9.]+)", text)
        driver = m.group(1) if m else None
    except OSError:
        pass
    return models, driver


def host_section() -> dict[str, Any]:
    model, flags = _cpuinfo()
    gpus, driver = _nvidia_gpus()
    return {
        "hostname": platform.node() or None,
        "os": platform.platform(),
        "machine": platform.machine() or None,
        "cpu": model or platform.processor() or None,
        "cpu_flags": sorted(f for f in CPU_FLAGS if f in flags),
        "cpu_bf16": any(f in flags for f in BF16_CPU_FLAGS),
        "cores": os.cpu_count(),
        "cores_usable": cpu_cores(),
        "gpus": gpus,
        "nvidia_driver": driver,
    }


# ---------------------------------------------------------------------------
# versions


def _dist_version(names: tuple[str, ...]) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
        except Exception:  # a damaged install's metadata: unknown, not a failed run
            return None
    return None


def _torch_build() -> dict[str, str | None]:
    """The CUDA / ROCm torch was built with, read from the ``torch/version.py`` it ships
    (importing torch costs seconds)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(str(distribution("torch").locate_file("torch/version.py")))
        text = path.read_text(encoding="utf-8", errors="replace")[:8192]
    except (PackageNotFoundError, OSError, ValueError):
        return {"cuda": None, "hip": None}
    out: dict[str, str | None] = {}
    for key in ("cuda", "hip"):
        m = re.search(rf"^{key}\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
        out[key] = m.group(1) if m else None
    return out


def _cann_version(environ: Mapping[str, str]) -> str | None:
    """The CANN toolkit's version (Ascend), from the install's own info file
    (``version=7.0.RC1``), where the toolkit's environment script or the default
    install put it."""
    homes = [environ.get("ASCEND_TOOLKIT_HOME"), "/usr/local/Ascend/ascend-toolkit/latest"]
    for home in filter(None, homes):
        root = Path(home)
        try:
            found = [root / INFO_FILE, *sorted(root.glob(f"*-linux/{INFO_FILE}"))]
        except OSError:
            continue
        for p in found:
            try:
                text = p.read_text(errors="replace")[:8192]
            except OSError:
                continue
            m = re.search(r"^\s*version\s*=\s*(\S+)", text, re.M)
            if m:
                return m.group(1)
    return None


def versions_section(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n2n": package_version(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
    }
    for key, names in PACKAGES.items():
        out[key] = _dist_version(names)
    out.update(_torch_build())
    out["cann"] = _cann_version(environ)
    return out


# ---------------------------------------------------------------------------
# the code: which commit of which checkout, and what was changed in it


def checkout_root() -> Path | None:
    """The git checkout this n2n runs from (found from the package, not the working
    folder); None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / ".git").exists() else None


def _git_env() -> dict[str, str]:
    # A GIT_DIR or GIT_WORK_TREE of the user's shell would point git at another repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"  # status must not take index.lock beside a user's git
    return env


def _git(root: Path, *args: str, cap: int = 1 << 16) -> tuple[bytes, bool] | None:
    """(stdout up to ``cap`` bytes, whether it was cut); None when git fails or is missing."""
    try:
        proc = subprocess.Popen(
            ["git", "-C", str(root), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_git_env(),
        )
    except OSError:
        return None
    try:
        out = b""
        deadline = time.monotonic() + GIT_TIMEOUT_S
        assert proc.stdout is not None
        # Read in pieces so a huge diff is never held whole; the timeout bounds a hung git.
        while len(out) <= cap and time.monotonic() < deadline:
            chunk = proc.stdout.read1(1 << 16)
            if not chunk:
                break
            out += chunk
        cut = len(out) > cap
        if cut or time.monotonic() >= deadline:
            proc.kill()
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
        return None
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    if code != 0 and not cut:
        return None
    return out[:cap], cut


def code_section() -> tuple[dict[str, Any], bytes | None]:
    """(run.json's ``code``, the diff to save or None)."""
    root = checkout_root()
    section: dict[str, Any] = {"checkout": None, "commit": None, "dirty": None}
    if root is None:
        return section, None
    head = _git(root, "rev-parse", "HEAD")
    if head is None:
        return section, None
    section.update(checkout=str(root), commit=head[0].decode("ascii", "replace").strip())
    status = _git(root, "status", "--porcelain", "-z")
    if status is None:
        return section, None
    entries = [e for e in status[0].split(b"\0") if e]
    untracked = [e[3:].decode("utf-8", "replace") for e in entries if e.startswith(b"??")]
    section["dirty"] = bool(entries)
    if not entries:
        return section, None
    diff = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff", cap=DIFF_CAP)
    body, cut = diff if diff is not None else (b"", False)
    trailer = b""
    if cut:
        trailer += f"\n# n2n: diff cut at {DIFF_CAP} bytes\n".encode()
    if untracked:
        # `git diff` leaves new files out: their names at least say that they were there.
        names = "".join(f"#   {n}\n" for n in untracked[:200])
        more = f"#   ... and {len(untracked) - 200} more\n" if len(untracked) > 200 else ""
        trailer += f"\n# n2n: untracked files (not in the diff):\n{names}{more}".encode()
    text = body + trailer
    # Two dirty checkouts of one commit differ by their diffs: the hash tells them apart.
    section.update(diff_sha256=hashlib.sha256(text).hexdigest(), diff_cut=cut)
    section["untracked"] = len(untracked)
    return section, text


# ---------------------------------------------------------------------------
# the data


def _listing_hash(files: list[tuple[str, int]]) -> str:
    h = hashlib.sha256()
    for name, size in sorted(files):
        h.update(f"{name}\0{size}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _walk(root: Path) -> tuple[list[tuple[str, int]], bool]:
    """(relative name, size) of each regular file under ``root`` (hidden ones skipped,
    links not followed), at most LISTING_CAP; and whether the listing was cut."""
    out: list[tuple[str, int]] = []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith("."):
                        continue
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file():
                        if len(out) >= LISTING_CAP:
                            return out, True
                        out.append((os.path.relpath(e.path, root), e.stat().st_size))
        except OSError:
            continue
    return out, False


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".gif")


def data_identity(spec: str) -> dict[str, Any]:
    """What names the data ``spec`` (a preset's ``data.train``/``data.val``) points at:
    its path, how many images, and a hash (``hash_of`` says of what); as much of it as
    can be read (a folder it may not enter, say, leaves ``hash`` None)."""
    out: dict[str, Any] = {"spec": spec, "path": None, "images": None}
    out.update(hash=None, hash_of=None)
    try:
        _identify(spec, out)
    except OSError:
        pass
    return out


def _identify(spec: str, out: dict[str, Any]) -> None:
    from n2n_core.config.schema import DataSpec

    ds = DataSpec.parse(spec)
    if ds.kind == "builtin":
        from n2n_core.data.builtin import builtin_files

        try:
            files = builtin_files(ds.value)
        except Exception:  # not a photo set (MRI phantoms: the name is their recipe)
            return
        out.update(path=str(files[0].parent) if files else None, images=len(files))
        out.update(hash=_listing_hash([(f.name, _size(f)) for f in files]), hash_of="listing")
        return
    p = ds.path
    if p is None or not p.exists():
        return
    out["path"] = str(p.resolve())
    if p.is_dir():
        files, cut = _walk(p)
        out["images"] = sum(1 for n, _ in files if n.lower().endswith(IMAGE_SUFFIXES))
        out.update(hash=_listing_hash(files), hash_of="listing", files=len(files))
        if cut:
            out["listing_cut"] = True
        return
    from n2n_core.data.packed import MAGIC

    if not is_regular_file(p):  # a FIFO would block the open
        return
    with open(p, "rb") as f:
        head = f.read(len(MAGIC) + 8)
        if head[: len(MAGIC)] == MAGIC and len(head) == len(MAGIC) + 8:
            # A packed set: its header lists every image's name, shape and offset (a
            # name's quotes are escaped in it, so each image has one '"offset"').
            hlen = int.from_bytes(head[len(MAGIC) :], "little")
            header = f.read(min(hlen, 64 << 20))
            out.update(hash=hashlib.sha256(head + header).hexdigest(), hash_of="header")
            out["images"] = header.count(b'"offset"')
        else:
            # Another file (MRI slices): its first MiB, beside its size.
            body = head + f.read(HEAD_BYTES - len(head))
            out.update(hash=hashlib.sha256(body).hexdigest(), hash_of="first MiB")
    out["bytes"] = p.stat().st_size


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return -1


def data_section(train: str, val: str | None) -> dict[str, Any]:
    return {"train": data_identity(train), "val": data_identity(val) if val else None}


# ---------------------------------------------------------------------------
# collecting and recording


def knobs_section(environ: Mapping[str, str]) -> dict[str, Any]:
    return {k: environ[k] for k in KNOBS if k in environ}


def collect(
    train: str, val: str | None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], bytes | None]:
    """(provenance without the torch section, the code diff to save or None)."""
    environ = os.environ if environ is None else environ
    code, diff = code_section()
    prov = {
        "code": code,
        "versions": versions_section(environ),
        "host": host_section(),
        "knobs": knobs_section(environ),
        "data": data_section(train, val),
    }
    return prov, diff


def preset_provenance(preset) -> tuple[dict[str, Any], bytes | None]:
    """:func:`collect` for a preset's data."""
    return collect(preset.data.train, preset.data.val)


def save_code_diff(run_dir: str | Path, collected: tuple[dict[str, Any], bytes | None]) -> dict:
    """Write a dirty checkout's diff into ``run_dir`` (``code.diff``); the provenance to
    record, naming it."""
    prov, diff = collected
    prov = {**prov, "code": dict(prov["code"])}
    if diff is not None:
        path = RunPaths(run_dir).code_diff
        atomic_write_bytes(path, diff)
        prov["code"]["diff"] = path.name
    return prov


def record_provenance(run_dir: str | Path, preset) -> dict[str, Any]:
    """Collect this process's provenance for ``preset`` and record it in ``run_dir``
    (run.json's ``provenance``, ``code.diff``): for a run folder made earlier (a sweep's
    queued point) that starts now. ``prepare_run`` records a new run's."""
    from n2n_core.errors import UserError
    from n2n_core.runs.info import update_run_info

    try:
        prov = save_code_diff(run_dir, preset_provenance(preset))
        update_run_info(run_dir, edit=lambda info: {"provenance": _merged(info.provenance, prov)})
    except OSError as e:
        raise UserError(
            f"{run_dir}: cannot record the run's provenance ({e.strerror or e})"
        ) from None
    return prov


def _merged(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    # The torch section, written by rank 0, may already be there.
    keep = {k: v for k, v in old.items() if k not in new} if isinstance(old, dict) else {}
    return {**new, **keep}


def torch_state(torch: Any, device: Any) -> dict[str, Any]:
    """What a process with torch loaded computes with (rank 0 records it under ``torch``):
    threads, math precision, TF32/cuDNN switches, determinism, the device's name. Takes
    the loaded module: this module never imports torch."""
    b = torch.backends
    out: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "device": str(device),
        "device_name": None,
    }
    cap = getattr(getattr(b, "cpu", None), "get_cpu_capability", None)
    out["cpu_capability"] = cap() if cap is not None else None
    if device.type == "cuda":
        out.update(
            device_name=torch.cuda.get_device_name(device),
            cuda_matmul_allow_tf32=bool(b.cuda.matmul.allow_tf32),
            cudnn_allow_tf32=bool(b.cudnn.allow_tf32),
            cudnn_benchmark=bool(b.cudnn.benchmark),
            cudnn_deterministic=bool(b.cudnn.deterministic),
            cudnn=b.cudnn.version(),
        )
    elif device.type == "npu":  # pragma: no cover - needs Ascend hardware
        npu = getattr(torch, "npu", None)
        name = getattr(npu, "get_device_name", None)
        out["device_name"] = name(device) if name is not None else None
        for unit in ("matmul", "conv"):
            flag = getattr(getattr(npu, unit, None), "allow_hf32", None)
            out[f"{unit}_allow_hf32"] = None if flag is None else bool(flag)
    elif device.type == "cpu":
        out["device_name"] = _cpuinfo()[0] or platform.processor() or None
    return out


def record_torch_state(run_dir: str | Path, torch: Any, device: Any) -> None:
    from n2n_core.runs.info import update_run_info

    state = torch_state(torch, device)

    def edit(info) -> dict[str, Any]:
        prov = dict(info.provenance) if isinstance(info.provenance, dict) else {}
        prov["torch"] = state
        return {"provenance": prov}

    update_run_info(run_dir, edit=edit)


# ---------------------------------------------------------------------------
# comparing


# Fields that differ between any two runs and say nothing about their numbers.
NOT_COMPARED = frozenset({"code.diff"})


def provenance_diff(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every provenance field that differs
    (``ABSENT`` where one run has no such field); sections only one side recorded are
    compared too, so a run without provenance differs in everything."""
    fa = flat_keys(a if isinstance(a, dict) else {})
    fb = flat_keys(b if isinstance(b, dict) else {})
    keys = list(dict.fromkeys([*fa, *fb]))
    return [
        (k, fa.get(k, ABSENT), fb.get(k, ABSENT))
        for k in keys
        if k not in NOT_COMPARED and fa.get(k, ABSENT) != fb.get(k, ABSENT)
    ]


def compared_now(recorded: Any, now: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """What differs between a run's recorded provenance and ``now`` (collected here,
    without the torch section, which only a training process knows)."""
    rec = {k: v for k, v in recorded.items() if k in now} if isinstance(recorded, dict) else {}
    return provenance_diff(rec, now)


def diff_lines(rows: list[tuple[str, Any, Any]]) -> list[str]:
    """One ``key: A -> B`` line per row (values as ``n2n-core diff`` shows them)."""
    from n2n_core.config.diff import show_value

    return [f"{k}: {show_value(va)} -> {show_value(vb)}" for k, va, vb in rows]
