"""Files a tester would hand the engine: broken images, snapshots that must not be trusted,
hostile presets, ONNX models that are not ours, damaged run folders.

Each builder writes one such file (or folder) and returns its path; the tests
that feed them to the engine live with the concept they test.
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, side: int = 100_000) -> Path:
    """A valid PNG header claiming side x side pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00" * 1024)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", raw)
        + _png_chunk(b"IEND", b"")
    )
    return path


def good_png(path: Path, size=(40, 30), mode="RGB") -> Path:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def make_bad_image(kind: str, d: Path) -> Path:
    if kind == "zero-bytes":
        p = d / "empty.png"
        p.write_bytes(b"")
    elif kind == "truncated":
        full = good_png(d / "full.png", (200, 150))
        p = d / "truncated.png"
        p.write_bytes(full.read_bytes()[:300])
    elif kind == "truncated-jpeg":
        full = d / "full.jpg"
        Image.fromarray(
            np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
        ).save(full)
        p = d / "truncated.jpg"
        p.write_bytes(full.read_bytes()[:2000])
    elif kind == "not-an-image":
        p = d / "notes.png"
        p.write_text("this is not a picture\n")
    elif kind == "random-bytes":
        p = d / "noise.jpg"
        p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "bomb":
        p = bomb_png(d / "bomb.png")
    elif kind == "folder":
        p = d / "a_folder.png"
        p.mkdir()
    else:
        raise ValueError(kind)
    return p


class Evil:
    """Unpickling this creates a file: proof that a loader unpickled."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def make_bad_snapshot(kind: str, d: Path, good: Path) -> Path:
    if kind == "zero-bytes":
        p = d / "zero.safetensors"
        p.write_bytes(b"")
    elif kind == "truncated":
        p = d / "truncated.safetensors"
        p.write_bytes(good.read_bytes()[:5000])
    elif kind == "random-bytes":
        p = d / "random.safetensors"
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes())
    elif kind == "wrong-architecture":
        import torch
        from safetensors.torch import save_file

        p = d / "other.safetensors"
        save_file(
            {"net.enc_conv0.weight": torch.zeros(8, 3, 3, 3)},
            p,
            metadata={"format": "n2n-snapshot/1"},
        )
    elif kind == "foreign-safetensors":
        import torch
        from safetensors.torch import save_file

        p = d / "foreign.safetensors"
        save_file({"layer.weight": torch.zeros(2, 2)}, p)
    elif kind in ("pickle", "pickle-pt"):
        p = d / ("evil.safetensors" if kind == "pickle" else "evil.pt")
        p.write_bytes(pickle.dumps(Evil(str(d / "PWNED"))))
    elif kind == "torch-save":
        import torch

        p = d / "model.pth"
        torch.save({"w": torch.zeros(1), "evil": Evil(str(d / "PWNED"))}, p)
    else:
        raise ValueError(kind)
    return p


def _alias_bomb(levels: int, width: int = 9) -> str:
    lines = ["name: x", "train: {steps: 1}", f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def make_bad_preset(kind: str, d: Path) -> tuple[Path, str]:
    """(path, what the error line must say) for one hostile preset."""
    p = d / f"{kind}.yaml"
    if kind == "alias-bomb":
        p.write_text(_alias_bomb(9))  # 9^9 values once expanded, from under 1 KB
        return p, "aliases are expanded"
    if kind == "alias-bomb-in-value":
        p.write_text(_alias_bomb(6, 12) + "description: *l5\n")  # 12^6 strings in one value
        return p, "aliases are expanded"
    if kind == "merge-key-bomb":
        lines = ["name: x", "train: {steps: 1}", "m0: &m0 {a: 1, b: 2, c: 3, d: 4}"]
        lines += [f"m{i}: &m{i} {{x: *m{i - 1}, y: *m{i - 1}, z: *m{i - 1}}}" for i in range(1, 12)]
        p.write_text("\n".join(lines) + "\n")
        return p, "aliases are expanded"
    if kind == "alias-cycle":
        p.write_text("name: x\ntrain: &t {steps: 1, again: *t}\n")
        return p, "cycle"
    if kind == "deep-nesting":
        p.write_text("name: x\ndescription: " + "[" * 5000 + "]" * 5000 + "\n")
        return p, "nested"
    if kind == "deep-mapping":
        p.write_text("name: x\nmri: " + "{a: " * 100 + "1" + "}" * 100 + "\n")
        return p, "nested"
    if kind == "huge-file":
        p.write_text("name: x\ntrain: {steps: 1}\ndescription: " + "a" * (2 << 20) + "\n")
        return p, "larger than"
    if kind == "duplicate-top-key":
        p.write_text("name: x\ntrain: {steps: 1}\ntrain: {steps: 2}\n")
        return p, "duplicate key 'train'"
    if kind == "duplicate-nested-key":
        p.write_text("name: x\ntrain:\n  steps: 1\n  lr: 0.1\n  lr: 0.2\n")
        return p, "duplicate key 'lr'"
    if kind == "duplicate-flow-key":
        p.write_text("name: x\ntrain: {steps: 1, steps: 3}\n")
        return p, "duplicate key 'steps'"
    if kind == "fifo":
        import os

        os.mkfifo(p)
        return p, "FIFO"
    if kind == "folder":
        p.mkdir()
        return p, "folder"
    if kind == "not-utf8":
        p.write_bytes(b"name: \xff\xfe\n")
        return p, "UTF-8"
    raise ValueError(kind)


DAMAGED_RUN_JSON = {
    "no-run-json": None,
    "not-json": "{not json",
    "a-list": "[1, 2]",
    "wrong-types": json.dumps(
        {
            "status": "[red]x",
            "pid": "abc",
            "world_size": "two",
            "started": "yesterday",
            "ended": [1],
            "total_steps": {"a": 1},
            "device": ["cpu"],
            "precision": 16,
            "exit_code": 1.5,
        }
    ),
    "nan-times": '{"status": "finished", "started": NaN, "ended": Infinity, "world_size": true}',
    "not-utf8": b"\xff\xfe{",
}


def damaged_results(root: Path) -> Path:
    res = root / "results"
    for i, (kind, content) in enumerate(DAMAGED_RUN_JSON.items()):
        d = res / f"{i:05d}-{kind}"
        d.mkdir(parents=True)
        if content is not None:
            (d / "run.json").write_bytes(
                content if isinstance(content, bytes) else content.encode()
            )
        (d / "metrics.jsonl").write_text(
            '{"kind":"event","step":1,"time":1,"msg":"[/bold] boom [link=file:///etc/passwd]x"}\n'
            '{"kind":"val","step":"2","psnr":"high","input_psnr":[1]}\n'
            '{"kind":"val","step":2,"psnr":NaN}\n'
            '{"kind":"val","step":3,"psnr":25.5,"input_psnr":20.0}\n'
        )
    evil = res / "00031-[bold red]evil"
    evil.mkdir()
    (evil / "run.json").write_text('{"status": "finished", "device": "[/]"}')
    good = res / "00040-good"
    good.mkdir()
    (good / "run.json").write_text('{"status": "finished", "device": "cpu", "world_size": 1}')
    return res


def _resave(good: Path, out: Path, tensors=None, meta=None) -> Path:
    """``good`` with some tensors / metadata replaced (metadata values are JSON text)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(good), framework="pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
        md = dict(f.metadata())
    t.update(tensors or {})
    md.update(meta or {})
    save_file(t, out, metadata=md)
    return out


def make_damaged_snapshot(kind: str, d: Path, good: Path) -> Path:
    import torch
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        w = f.get_tensor("net.enc_conv3.weight")
    p = d / f"{kind}.safetensors"
    if kind in ("nan", "inf", "-inf"):
        bad = w.clone()
        bad[0, 0, 0, 0] = float(kind)
        return _resave(good, p, {"net.enc_conv3.weight": bad})
    if kind in ("int32", "int64", "uint8", "bool"):
        return _resave(good, p, {"net.enc_conv3.weight": w.to(getattr(torch, kind))})
    if kind == "five-channels":
        return _resave(good, p, {"net.enc_conv0.weight": torch.zeros(48, 5, 3, 3)})
    if kind == "flat-first-layer":
        return _resave(good, p, {"net.enc_conv0.weight": torch.zeros(48)})
    meta = {
        "step-is-text": {"step": '"abc"'},
        "step-negative": {"step": "-5"},
        "step-is-bool": {"step": "true"},
        "task-is-list": {"task": "[1]"},
        "task-unknown": {"task": '"video"'},
        "noise-is-number": {"noise": "5"},
        "preset-is-list": {"preset": "[1, 2]"},
        "preset-noise-is-text": {"preset": '{"noise": "gaussian"}'},
        "deeply-nested": {"preset": "[" * 100_000 + "]" * 100_000},
        "val-psnr-is-text": {"val_psnr": '"high"'},
        "noise-unknown": {"noise": '"purple"'},
        "noise-params-wrong": {"preset": '{"noise": {"type": "gaussian", "val_sigma": "x"}}'},
    }[kind]
    return _resave(good, p, meta=meta)


def make_bad_onnx(kind: str, path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    c = {"five-channels": 5, "two-channels": 2}.get(kind, 3)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, "H", "W"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, None)
    inits = []
    if kind in ("five-channels", "two-channels"):
        nodes = [helper.make_node("Identity", ["input"], ["output"])]
    elif kind == "shrinks":
        nodes = [
            helper.make_node("MaxPool", ["input"], ["output"], kernel_shape=[2, 2], strides=[2, 2])
        ]
    elif kind == "drops-channels":
        nodes = [helper.make_node("ReduceMean", ["input"], ["output"], axes=[1], keepdims=1)]
    elif kind == "huge-memory":  # asks onnxruntime for 1.2e14 floats at run time
        shape = [100000, 3, 10000, 10000]
        inits = [helper.make_tensor("shape", TensorProto.INT64, [4], shape)]
        nodes = [
            helper.make_node("ConstantOfShape", ["shape"], ["big"]),
            helper.make_node("Add", ["input", "big"], ["output"]),
        ]
    else:
        raise ValueError(kind)
    g = helper.make_graph(nodes, "g", [inp], [out], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


DEEP = "[" * 50_000  # past Python's recursion limit in json.loads
