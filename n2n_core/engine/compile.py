"""Optional speed-ups that depend on the device: torch.compile with a clean fallback.

``torch.compile`` is lazy: a missing C++ compiler or an unsupported op only
shows at the first call, and inductor compiles the backward pass at the first
backward. :func:`compile_model` therefore returns a wrapper that tries the
compiled network's forward on the first call and its backward on the first
call that records gradients (a gradient probe that leaves ``.grad`` alone) and,
if either fails to compile, says so once and runs eager from then on —
training never dies because of it.

Compiled kernels are cached on disk (``~/.cache/n2n/inductor``, or
``TORCHINDUCTOR_CACHE_DIR``), so only the first run on a machine pays the
compile time. On CUDA the mode is ``max-autotune``, which also records the
fixed-shape training step's forward and backward as CUDA graphs; elsewhere the
default mode (fused C++/OpenMP kernels around oneDNN convolutions on CPU).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

CACHE_DIR = Path.home() / ".cache" / "n2n" / "inductor"


def compile_mode(device: torch.device) -> str | None:
    """The torch.compile mode for a device; None where compiling is not worth trying."""
    if device.type == "cuda":
        return "max-autotune"
    if device.type == "cpu":
        return "default"
    return None  # npu / mps: the vendor's eager kernels; inductor does not target them


def configure_cache() -> None:
    """Keep inductor's compiled kernels across runs (its default lives in /tmp)."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        try:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(CACHE_DIR)
        except OSError:
            pass  # read-only home: inductor's /tmp default still works


class CompiledOrEager:
    """Calls the compiled network; on a compile failure at the first call, the eager one."""

    def __init__(self, eager: torch.nn.Module, compiled: Callable, on_fallback=None):
        self.eager = eager
        self.compiled = compiled
        self.on_fallback = on_fallback
        self._checked = False  # the backward pass compiled too (or compiling failed)
        self.failed: str | None = None

    def __call__(self, *args, **kwargs):
        if self._checked or self.failed:
            return (self.eager if self.failed else self.compiled)(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
            # Under DDP an extra backward would run its reducer's hooks: not probed there.
            ddp = isinstance(self.eager, torch.nn.parallel.DistributedDataParallel)
            if isinstance(out, torch.Tensor) and out.requires_grad and not ddp:
                # The backward compiles at the first backward: try it here, where a
                # failure can still fall back. The probe's gradients are thrown away;
                # the graph is kept for the caller's own backward.
                params = [p for p in self.eager.parameters() if p.requires_grad]
                torch.autograd.grad(out.float().sum(), params, retain_graph=True, allow_unused=True)
            # Checked once a call recorded gradients (the backward is then known to compile).
            self._checked = (not isinstance(out, torch.Tensor)) or out.requires_grad or ddp
        except Exception as e:  # no toolchain, unsupported op: eager is always correct
            self.failed = (
                f"{e.__class__.__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            )
            if self.on_fallback:
                self.on_fallback(self.failed)
            out = self.eager(*args, **kwargs)
        return out

    def __getattr__(self, name):  # train/eval, parameters, ... reach the eager module
        return getattr(self.eager, name)


def compile_model(
    model: torch.nn.Module, device: torch.device, on_fallback=None
) -> torch.nn.Module | CompiledOrEager:
    """``model`` compiled for ``device`` where that is supported, else ``model`` itself."""
    mode = compile_mode(device)
    if mode is None:
        return model
    configure_cache()
    try:
        compiled = torch.compile(model, mode=mode)
    except Exception as e:
        if on_fallback:
            on_fallback(f"{e.__class__.__name__}: {e}")
        return model
    return CompiledOrEager(model, compiled, on_fallback)
