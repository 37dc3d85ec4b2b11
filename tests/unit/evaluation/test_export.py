"""Freeze to ONNX, validate/infer the frozen model, tiled inference."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cli_helpers import assert_user_error, n2n

from n2n_core.cli.main import main
from n2n_core.data.images import load_image, save_image
from n2n_core.engine.network import UNet
from n2n_core.engine.snapshots import save_snapshot
from n2n_core.evaluation.onnx import onnx_runner, onnx_runner_for_net, validate_frozen
from n2n_core.evaluation.protocol import (
    TILE_MARGIN,
    clip_to_uint8,
    infer_float,
    infer_tiled,
    pad_image,
    tile_spans,
    to_float,
    torch_runner,
)


def _photo(name: str) -> np.ndarray:
    from n2n_core.data.builtin import skimage_data_dir

    return load_image(skimage_data_dir() / name)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> tuple[Path, Path]:
    """(snapshot, model.onnx) of a random-init U-Net, frozen through the CLI."""
    d = tmp_path_factory.mktemp("frozen")
    torch.manual_seed(0)
    preset = {"name": "tiny-freeze", "noise": {"type": "gaussian", "val_sigma": 20.0}}
    meta = {
        "step": 123,
        "preset": preset,
        "task": "image",
        "noise": "gaussian",
        "targets": "noisy",
        "in_channels": 3,
        "val_psnr": 12.34,
    }
    snap = save_snapshot(d / "final.safetensors", UNet(3), meta)
    model = d / "model.onnx"
    assert main(["freeze", "--snapshot", str(snap), "--out", str(model)]) == 0
    return snap, model


def _json_out(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_frozen_model_passes_checker_and_carries_metadata(frozen):
    _, model_path = frozen
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["noise"] == "gaussian"
    assert meta["targets"] == "noisy"
    assert meta["step"] == "123"
    assert meta["preset_name"] == "tiny-freeze"
    assert meta["val_psnr"] == "12.34"
    assert meta["task"] == "image"
    assert meta["in_channels"] == "3"
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]


def test_onnxruntime_computes_the_same_function_as_torch(frozen):
    _, model_path = frozen
    torch.manual_seed(0)
    net = UNet(3).eval()  # same seed -> same weights as the frozen snapshot
    run, channels = onnx_runner(model_path)
    assert channels == 3
    x = pad_image(np.random.default_rng(1).uniform(-0.5, 0.5, (3, 45, 70)).astype(np.float32))
    want = torch_runner(net)(x[None])
    assert np.abs(run(x[None]) - want).max() < 1e-3 * max(1.0, np.abs(want).max())
    assert np.abs(onnx_runner_for_net(net, 3)(x[None]) - want).max() < 1e-3 * max(
        1.0, np.abs(want).max()
    )


@pytest.mark.parametrize(("noise", "seed"), [(None, 0), ("poisson", 3)])
def test_validate_frozen_matches_validate(frozen, val_dir, capsys, noise, seed):
    snap, model = frozen
    extra = (["--noise", noise] if noise else []) + ["--seed", str(seed), "--json"]
    a = _json_out(
        capsys, ["validate", "--snapshot", str(snap), "--dataset-dir", str(val_dir)] + extra
    )
    b = _json_out(
        capsys, ["validate-frozen", "--model", str(model), "--dataset-dir", str(val_dir)] + extra
    )
    assert a["images"] == b["images"] == 2
    assert a["noise"] == b["noise"] == (noise or "gaussian")
    assert abs(a["psnr"] - b["psnr"]) < 0.01
    assert a["input_psnr"] == b["input_psnr"]  # same noise draws
    res = validate_frozen(model, val_dir, noise=noise, seed=seed)  # unrounded
    assert abs(res.psnr - a["psnr"]) < 0.01


def test_infer_frozen_keeps_odd_size_and_matches_infer(frozen, tmp_path, capsys):
    snap, model = frozen
    src = tmp_path / "odd.png"
    save_image(src, _photo("astronaut.png")[:217, :333])
    out_onnx, out_torch = tmp_path / "onnx.png", tmp_path / "torch.png"
    argv = ["--image", str(src), "--out"]
    assert main(["infer-frozen", "--model", str(model), *argv, str(out_onnx)]) == 0
    assert main(["infer", "--snapshot", str(snap), "--engine", "torch", *argv, str(out_torch)]) == 0
    a, b = load_image(out_onnx), load_image(out_torch)
    assert a.shape == (217, 333, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_infer_frozen_and_infer_auto_on_a_folder(frozen, val_dir, tmp_path):
    snap, model = frozen
    out_f, out_a = tmp_path / "frozen", tmp_path / "auto"
    assert (
        main(["infer-frozen", "--model", str(model), "--image", str(val_dir), "--out", str(out_f)])
        == 0
    )
    assert (
        main(["infer", "--snapshot", str(snap), "--image", str(val_dir), "--out", str(out_a)]) == 0
    )
    names = sorted(p.name for p in val_dir.iterdir())
    assert sorted(p.name for p in out_f.iterdir()) == names
    for name in names:
        want = load_image(val_dir / name).shape
        assert load_image(out_f / name).shape == load_image(out_a / name).shape == want


def _bad_models(d: Path, snap: Path) -> dict[str, Path]:
    files = {
        "empty": (d / "empty.onnx", b""),
        "random": (d / "random.onnx", np.random.default_rng(0).bytes(4096)),
        "pickle": (d / "model.pkl.onnx", pickle.dumps({"weights": [1, 2, 3]})),
        "text": (d / "notes.onnx", b"this is not a model\n" * 10),
    }
    for path, data in files.values():
        path.write_bytes(data)
    out = {k: p for k, (p, _) in files.items()}
    out["snapshot"] = snap
    out["missing"] = d / "missing.onnx"
    out["folder"] = d
    return out


def test_bad_model_files_are_user_errors_naming_the_file(frozen, val_dir, tmp_path, capsys):
    snap, _ = frozen
    for kind, path in _bad_models(tmp_path, snap).items():
        for argv in (
            ["validate-frozen", "--model", str(path), "--dataset-dir", str(val_dir)],
            [
                "infer-frozen",
                "--model",
                str(path),
                "--image",
                str(val_dir),
                "--out",
                str(tmp_path / "o"),
            ],
        ):
            capsys.readouterr()
            assert main(argv) == 2, (kind, argv)
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("error: "), (kind, err)
            assert str(path) in err[0], (kind, err)


def test_bad_model_exit_status_from_the_real_command(tmp_path, val_dir):
    bad = tmp_path / "random.onnx"
    bad.write_bytes(np.random.default_rng(1).bytes(1000))
    r = n2n("validate-frozen", "--model", bad, "--dataset-dir", val_dir)
    assert_user_error(r, str(bad))


def test_freeze_user_errors(frozen, tmp_path, capsys):
    snap, _ = frozen
    out = tmp_path / "m.onnx"
    cases = [
        (["--snapshot", str(snap), "--out", str(tmp_path / "nope" / "m.onnx")], "nope"),
        (["--snapshot", str(snap), "--out", str(tmp_path)], str(tmp_path)),
        (["--snapshot", str(tmp_path / "missing.safetensors"), "--out", str(out)], "missing"),
    ]
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04junk")
    cases.append((["--snapshot", str(tmp_path / "junk.safetensors"), "--out", str(out)], "junk"))
    for argv, needle in cases:
        capsys.readouterr()
        assert main(["freeze", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and needle in err, err
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*.tmp-*"))


# -- tiled inference ------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 31, 200, 288, 289, 300, 333, 1000, 4097])
@pytest.mark.parametrize(("tile", "margin"), [(96, 32), (288, 128), (512, 128), (500, 64)])
def test_tile_spans_cover_the_axis_on_the_pooling_grid(n, tile, margin):
    spans = tile_spans(n, tile, margin)
    assert spans[0][0] == 0 and spans[-1][1] == n
    longest = max(tile // 32 * 32, 2 * margin + 32)
    for (c0, c1, i0, i1), nxt in zip(spans, spans[1:] + [None], strict=True):
        assert c0 < c1 and i0 <= c0 and c1 <= i1 <= n
        assert i0 % 32 == 0
        assert i1 - i0 <= max(longest, n if len(spans) == 1 else 0)
        assert c0 - i0 >= min(margin, c0) and i1 - c1 >= min(margin, n - c1)
        if nxt is not None:
            assert nxt[0] == c1


def test_tiling_is_exact_for_a_local_operator():
    """A runner whose receptive field is inside the margin: tiled == whole, bit for bit."""

    def box3(b: np.ndarray) -> np.ndarray:
        p = np.pad(b, ((0, 0), (0, 0), (1, 1), (1, 1)))
        h, w = b.shape[2:]
        return sum(p[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0

    x = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 301, 333)).astype(np.float32)
    assert np.array_equal(infer_tiled(box3, x, 96, margin=32), infer_float(box3, x))


def test_tiled_unet_agrees_with_whole_image_within_one_level():
    """The shipped margin on a random-init U-Net, the hard case (see infer.TILE_MARGIN)."""
    torch.manual_seed(0)
    run = torch_runner(UNet(3).eval())
    rng = np.random.default_rng(0)
    x = to_float(_photo("astronaut.png")[100:300, 100:400])
    x = x + rng.normal(0, 25 / 255, x.shape).astype(np.float32)
    tile = 2 * TILE_MARGIN + 32  # the smallest tile: splits the 300-pixel width in two
    assert len(tile_spans(300, tile)) == 2
    whole = clip_to_uint8(infer_float(run, x)).astype(int)
    tiled = clip_to_uint8(infer_tiled(run, x, tile)).astype(int)
    b = 16
    assert np.abs(tiled - whole)[:, b:-b, b:-b].max() <= 1


def test_tile_below_32_is_a_user_error(frozen, val_dir, tmp_path, capsys):
    _, model = frozen
    argv = ["infer-frozen", "--model", str(model), "--image", str(val_dir), "--out", str(tmp_path)]
    assert main([*argv, "--tile", "16"]) == 2
    assert "--tile 16" in capsys.readouterr().err


def test_a_residual_replicate_padded_network_freezes_to_the_same_function(
    tmp_path, val_dir, capsys
):
    torch.manual_seed(2)
    meta = {"step": 7, "preset": {"name": "r"}, "task": "image", "in_channels": 3}
    net = UNet(3, residual=True, padding="replicate")
    snap = save_snapshot(
        tmp_path / "r.safetensors", net, meta | {"residual": True, "padding": "replicate"}
    )
    model = tmp_path / "r.onnx"
    assert main(["freeze", "--snapshot", str(snap), "--out", str(model)]) == 0
    argv = ["--dataset-dir", str(val_dir), "--json"]
    a = _json_out(capsys, ["validate", "--snapshot", str(snap), *argv])
    b = _json_out(capsys, ["validate-frozen", "--model", str(model), *argv])
    assert abs(a["psnr"] - b["psnr"]) < 0.01
