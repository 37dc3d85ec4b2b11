"""Issue 8: every bad input gets one clear `error:` line and exit 2; awkward input works.

Table-driven: each case builds a file in tmp_path, runs a real ``n2n-core`` verb
as a subprocess and checks the exit status and the one-line message naming the
file. Cases run in-process where that is enough (image loading).
"""

from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, n2n
from PIL import Image

from n2n_core.data.images import load_image
from n2n_core.errors import UserError

# ---------------------------------------------------------------------------
# image files


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


def _good_png(path: Path, size=(40, 30), mode="RGB") -> Path:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def make_bad_image(kind: str, d: Path) -> Path:
    if kind == "zero-bytes":
        p = d / "empty.png"
        p.write_bytes(b"")
    elif kind == "truncated":
        full = _good_png(d / "full.png", (200, 150))
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


BAD_IMAGES = [
    "zero-bytes",
    "truncated",
    "truncated-jpeg",
    "not-an-image",
    "random-bytes",
    "bomb",
    "folder",
]


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_bad_images_are_user_errors_naming_the_file(kind, tmp_path):
    p = make_bad_image(kind, tmp_path)
    with pytest.raises(UserError) as e:
        load_image(p)
    assert str(p) in str(e.value)


def test_awkward_images_convert_correctly(tmp_path):
    # 16-bit grayscale: scaled to 8 bits, not clipped
    ramp = np.linspace(0, 65535, 64 * 16).astype(np.uint16).reshape(16, 64)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    g16 = load_image(tmp_path / "g16.png")
    assert g16.shape == (16, 64, 3) and g16.dtype == np.uint8
    assert g16.max() == 255 and g16.min() == 0
    assert np.allclose(g16[..., 0].astype(float), ramp / 257.0, atol=0.51)
    # grayscale -> replicated RGB
    Image.fromarray(np.full((5, 7), 99, np.uint8)).save(tmp_path / "g.png")
    assert (load_image(tmp_path / "g.png") == 99).all()
    # RGBA -> RGB (alpha dropped), palette, CMYK
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]
    _good_png(tmp_path / "p.png", mode="P")
    assert load_image(tmp_path / "p.png").shape == (30, 40, 3)
    Image.new("CMYK", (9, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    c = load_image(tmp_path / "c.jpg")
    assert c.shape == (8, 9, 3) and c[4, 4, 0] > 200 and c[4, 4, 1] < 60
    # 1x1
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "one.png")
    assert load_image(tmp_path / "one.png").tolist() == [[[1, 2, 3]]]


# ---------------------------------------------------------------------------
# snapshots


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    import torch

    from n2n_core.network import UNet
    from n2n_core.snapshots import save_snapshot

    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("snap") / "good.safetensors"
    save_snapshot(p, UNet(3), {"step": 1, "task": "image", "noise": "gaussian", "targets": "noisy"})
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


BAD_SNAPSHOTS = [
    "zero-bytes",
    "truncated",
    "random-bytes",
    "wrong-architecture",
    "foreign-safetensors",
    "pickle",
    "pickle-pt",
    "torch-save",
]


@pytest.mark.parametrize("kind", BAD_SNAPSHOTS)
def test_bad_snapshots_validate_and_infer(kind, tmp_path, snapshot, val_dir):
    p = make_bad_snapshot(kind, tmp_path, snapshot)
    img = _good_png(tmp_path / "in.png")
    assert_user_error(n2n("validate", "--snapshot", p, "--dataset-dir", val_dir), p.name)
    assert_user_error(
        n2n("infer", "--snapshot", p, "--image", img, "--out", tmp_path / "o.png"), p.name
    )
    assert not (tmp_path / "o.png").exists()
    assert not (tmp_path / "PWNED").exists(), "a snapshot was unpickled"


# ---------------------------------------------------------------------------
# infer on awkward and bad images


def test_infer_awkward_images(tmp_path, snapshot):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (1, 1), (10, 20, 30)).save(src / "one.png")
    Image.fromarray(np.linspace(0, 65535, 33 * 17).astype(np.uint16).reshape(17, 33)).save(
        src / "g16.png"
    )
    _good_png(src / "rgba.png", mode="RGBA")
    _good_png(src / "pal.png", mode="P")
    Image.new("CMYK", (9, 8), (0, 255, 255, 0)).save(src / "cmyk.jpg")
    r = n2n("infer", "--snapshot", snapshot, "--image", src, "--out", tmp_path / "out")
    assert r.code == 0, r.err
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "out").iterdir()}
    assert sizes == {
        "one.png": (1, 1),
        "g16.png": (33, 17),
        "rgba.png": (40, 30),
        "pal.png": (40, 30),
        "cmyk.jpg": (9, 8),
    }


@pytest.mark.parametrize("kind", ["zero-bytes", "truncated", "not-an-image", "bomb"])
def test_infer_bad_image(kind, tmp_path, snapshot):
    p = make_bad_image(kind, tmp_path)
    assert_user_error(
        n2n("infer", "--snapshot", snapshot, "--image", p, "--out", tmp_path / "o.png"), p.name
    )
    assert not (tmp_path / "o.png").exists()


def test_infer_missing_paths(tmp_path, snapshot):
    assert_user_error(
        n2n(
            "infer",
            "--snapshot",
            snapshot,
            "--image",
            tmp_path / "nope.png",
            "--out",
            tmp_path / "o.png",
        ),
        "nope.png",
    )
    img = _good_png(tmp_path / "in.png")
    assert_user_error(
        n2n(
            "infer",
            "--snapshot",
            snapshot,
            "--image",
            img,
            "--out",
            tmp_path / "no" / "dir" / "o.png",
        ),
        "no/dir",
    )


# ---------------------------------------------------------------------------
# data set folders


def test_dataset_build_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(
        n2n("dataset", "build", "--src", tmp_path / "empty", "--out", tmp_path / "x.n2nd"),
        "empty",
        "no images",
    )
    assert_user_error(
        n2n("dataset", "build", "--src", tmp_path / "missing", "--out", tmp_path / "x.n2nd"),
        "missing",
    )
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i in range(3):
        _good_png(mixed / f"ok{i}.png")
    make_bad_image("truncated", mixed)
    (mixed / "full.png").unlink()
    r = n2n("dataset", "build", "--src", mixed, "--out", tmp_path / "x.n2nd")
    assert_user_error(r, "truncated.png")
    assert not (tmp_path / "x.n2nd").exists()
    assert not list(tmp_path.glob(".x.n2nd*"))  # no half-written temp file either


def test_dataset_build_then_train_from_packed_file(tmp_path, photo_dir, make_preset):
    out = tmp_path / "photos.n2nd"
    r = n2n("dataset", "build", "--src", photo_dir, "--out", out)
    assert r.code == 0, r.err and "4 images" in r.out
    p = make_preset(
        data__train=str(out), train__steps=2, train__val_every=0, train__snapshot_every=0
    )
    r = n2n("run", p, "--results-dir", tmp_path / "res")
    assert r.code == 0, r.err
    # a damaged packed file is refused by name
    bad = tmp_path / "bad.n2nd"
    bad.write_bytes(out.read_bytes()[:1000])
    p = make_preset(data__train=str(bad))
    assert_user_error(n2n("run", p, "--results-dir", tmp_path / "res2"), "bad.n2nd")


def test_training_folder_with_one_corrupt_image(tmp_path, make_preset, photo_dir):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in photo_dir.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    make_bad_image("zero-bytes", mixed)
    p = make_preset(data__train=str(mixed))
    r = n2n("run", p, "--results-dir", tmp_path / "res")
    assert_user_error(r, "empty.png")
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())


# ---------------------------------------------------------------------------
# run folders


def test_runs_and_replay_survive_damaged_run_folders(tmp_path):
    res = tmp_path / "results"
    a = res / "00000-nojson"
    a.mkdir(parents=True)
    (a / "metrics.jsonl").write_text(
        '{"kind":"train","step":5,"loss":0.1}\ngarbage\n{"kind":"val","step":5,"psnr":25.5,"input_psnr":20.1}\n{"kind":"tr'
    )
    b = res / "00001-badjson"
    b.mkdir()
    (b / "run.json").write_text("{not json")
    (b / "metrics.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    r = n2n("runs", "--results-dir", res, "--json")
    assert r.code == 0, r.err
    import json

    runs = {x["name"]: x for x in json.loads(r.out)["runs"]}
    assert runs["nojson"]["best_psnr"] == 25.5 and runs["nojson"]["status"] == "unknown"
    assert runs["badjson"]["step"] == 0
    for d in (a, b):
        r = n2n("replay", d, "--speed", "0")
        assert r.code == 0 and "Traceback" not in r.err
    assert_user_error(n2n("replay", tmp_path / "nope"), "nope")
    assert_user_error(n2n("resume", a), "preset.yaml")


def test_unknown_verb_and_bad_flags():
    assert_user_error(n2n("frobnicate"), "invalid choice")
    assert_user_error(n2n("replay", "x", "--speed", "fast"), "--speed")


def test_snapshot_whose_header_length_starts_with_0x80_is_not_mistaken_for_a_pickle(tmp_path):
    # A safetensors file opens with its header length (u64 LE); a low byte of 0x80
    # must not look like a pickle's protocol marker.
    from n2n_core.network import UNet
    from n2n_core.snapshots import read_snapshot, save_snapshot

    net = UNet(3)
    for pad in range(300):
        p = tmp_path / f"s{pad}.safetensors"
        save_snapshot(p, net, {"step": 1, "pad": "a" * pad})
        if p.read_bytes()[:1] == b"\x80":
            assert read_snapshot(p).step == 1
            return
        p.unlink()
    pytest.fail("no header length with a 0x80 low byte in 300 tries")
