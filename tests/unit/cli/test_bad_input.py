"""Issue 8: every bad input gets one clear `error:` line and exit 2; awkward input works.

Table-driven: each case builds a file in tmp_path, runs a real ``n2n-core`` verb
as a subprocess and checks the exit status and the one-line message naming the
file. Cases run in-process where that is enough (image loading).
"""

from __future__ import annotations

import json
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

    from n2n_core.engine.network import UNet
    from n2n_core.engine.snapshots import save_snapshot

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
    assert runs["nojson"]["best_psnr"] == 25.5 and runs["nojson"]["status"] == "no run.json"
    # A damaged run.json is told apart from a missing one (the TUI says the same).
    assert runs["badjson"]["step"] == 0 and runs["badjson"]["status"] == "corrupt run.json"
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
    from n2n_core.engine.network import UNet
    from n2n_core.engine.snapshots import read_snapshot, save_snapshot

    net = UNet(3)
    for pad in range(300):
        p = tmp_path / f"s{pad}.safetensors"
        save_snapshot(p, net, {"step": 1, "pad": "a" * pad})
        if p.read_bytes()[:1] == b"\x80":
            assert read_snapshot(p).step == 1
            return
        p.unlink()
    pytest.fail("no header length with a 0x80 low byte in 300 tries")


# ---------------------------------------------------------------------------
# hostile presets (issue 18): bounded size, alias expansion, nesting; duplicate keys


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


BAD_PRESETS = [
    "alias-bomb",
    "alias-bomb-in-value",
    "merge-key-bomb",
    "alias-cycle",
    "deep-nesting",
    "deep-mapping",
    "huge-file",
    "duplicate-top-key",
    "duplicate-nested-key",
    "duplicate-flow-key",
    "fifo",
    "folder",
    "not-utf8",
]


@pytest.mark.parametrize("kind", BAD_PRESETS)
def test_hostile_presets_are_refused_at_once(kind, tmp_path):
    from n2n_core.config.preset import read_preset_data

    p, needle = make_bad_preset(kind, tmp_path)
    with pytest.raises(UserError) as e:
        read_preset_data(p)
    msg = str(e.value)
    assert str(p) in msg and needle in msg, msg
    assert len(msg) < 400, "an error message must not grow with the input"


@pytest.mark.parametrize("kind", ["alias-bomb", "fifo", "duplicate-nested-key"])
def test_hostile_presets_cli(kind, tmp_path):
    p, needle = make_bad_preset(kind, tmp_path)
    r = n2n("run", p, "--results-dir", tmp_path / "res", timeout=60)
    assert_user_error(r, p.name, needle)
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())


def test_special_files_as_preset(tmp_path):
    for dev in ("/dev/zero", "/dev/null"):
        if Path(dev).exists():
            assert_user_error(n2n("run", dev, timeout=60), dev, "character device")


def test_alias_merge_and_long_values_still_work(tmp_path):
    from n2n_core.config.preset import load_preset

    p = tmp_path / "ok.yaml"
    p.write_text(
        "name: ok\n"
        "base: &b {steps: 5, lr: 0.001}\n"
        "train:\n  <<: *b\n  lr: 0.002\n"  # an explicit key overrides a merged one
    )
    with pytest.raises(UserError, match="base: unknown key"):
        load_preset(p)
    p.write_text(
        "name: ok\n"
        "description: &d " + "x" * 50_000 + "\n"
        "train: &t\n  steps: 5\n"
        "runtime: {device: cpu}\n"
    )
    pre = load_preset(p)
    assert pre.train.steps == 5 and len(pre.description) == 50_000


def test_error_messages_do_not_embed_large_values(tmp_path):
    from n2n_core.config.preset import load_preset

    p = tmp_path / "big.yaml"
    p.write_text("name: ok\ntrain: {steps: 5}\ntask: " + "x" * 100_000 + "\n")
    with pytest.raises(UserError) as e:
        load_preset(p)
    assert "task" in str(e.value) and len(str(e.value)) < 400
    p.write_text("name: ok\ntrain: {steps: 5}\n" + "k" * 1000 + ": 1\n")
    with pytest.raises(UserError) as e:
        load_preset(p)
    assert "unknown key" in str(e.value) and len(str(e.value)) < 400


@pytest.mark.parametrize("name", ["../evil", "a/b", "-x", "", "x" * 65, ".hidden", "white space"])
def test_bad_name_blames_the_name_flag(name, tmp_path, make_preset):
    p = make_preset()
    r = n2n("run", p, "--name", name, "--results-dir", tmp_path / "res")
    assert_user_error(r, "--name")
    assert p.name not in r.err
    assert not (tmp_path / "res").exists()


def test_merge_key_override_is_not_a_duplicate(tmp_path):
    from n2n_core.config.preset import load_preset

    p = tmp_path / "merge.yaml"
    p.write_text("name: ok\ntrain:\n  <<: {steps: 5, lr: 0.001}\n  lr: 0.002\n")
    pre = load_preset(p)
    assert pre.train.steps == 5 and pre.train.lr == 0.002


# ---------------------------------------------------------------------------
# damaged run folders and run data that looks like markup (issue 18)

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


def _damaged_results(root: Path) -> Path:
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


def test_runs_list_survives_every_damaged_run_folder(tmp_path):
    res = _damaged_results(tmp_path)
    r = n2n("runs", "--results-dir", res, "--json")
    assert r.code == 0, r.err
    runs = {x["name"]: x for x in json.loads(r.out)["runs"]}  # strict JSON: no NaN
    assert set(runs) == {*DAMAGED_RUN_JSON, "[bold red]evil", "good"}
    assert runs["good"]["status"] == "finished"
    assert runs["wrong-types"]["status"] == "unknown" and runs["wrong-types"]["world_size"] == 1
    assert all(x["best_psnr"] == 25.5 for k, x in runs.items() if k in DAMAGED_RUN_JSON)
    r = n2n("runs", "--results-dir", res)
    assert r.code == 0 and not r.err, r.err
    assert "[bold red]evil" in r.out and "00040" in r.out


@pytest.mark.parametrize("speed", ["0", "1000"])
def test_replay_survives_damaged_runs_and_prints_no_markup(tmp_path, speed):
    res = _damaged_results(tmp_path)
    for d in sorted(res.iterdir()):
        r = n2n("replay", d, "--speed", speed)
        assert r.code == 0 and not r.err, (d, r.err)
        if speed != "0" and (d / "metrics.jsonl").exists():
            assert "[/bold] boom [link=file:///etc/passwd]x" in r.out
    r = n2n("replay", res / "00031-[bold red]evil", "--speed", "0")
    assert "00031-[bold red]evil" in r.out


def test_tui_tables_show_cells_as_plain_text():
    from rich.text import Text

    from n2n_tui.widgets.common.table import _plain

    cell = _plain("00031-[bold red]evil")
    assert isinstance(cell, Text) and cell.plain == "00031-[bold red]evil" and not cell.spans
    styled = Text("x", style="red")
    assert _plain(styled) is styled


# ---------------------------------------------------------------------------
# weights and metadata a snapshot must not be trusted with (issue 18)


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


DAMAGED_SNAPSHOTS = {
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "-inf": "NaN or infinite",
    "int32": "dtype int32",
    "int64": "dtype int64",
    "uint8": "dtype uint8",
    "bool": "dtype bool",
    "five-channels": "1 or 3 channels",
    "flat-first-layer": "1 or 3 channels",
    "step-is-text": "'step'",
    "step-negative": "'step'",
    "step-is-bool": "'step'",
    "task-is-list": "'task'",
    "task-unknown": "'task'",
    "noise-is-number": "'noise'",
    "preset-is-list": "'preset'",
    "preset-noise-is-text": "'preset.noise'",
    "deeply-nested": "nested too deeply",
    "val-psnr-is-text": "'val_psnr'",
}


@pytest.mark.parametrize("kind", list(DAMAGED_SNAPSHOTS))
def test_damaged_weights_and_metadata_are_refused(kind, tmp_path, snapshot):
    from n2n_core.engine.snapshots import load_network

    p = make_damaged_snapshot(kind, tmp_path, snapshot)
    with pytest.raises(UserError) as e:
        load_network(p)
    assert str(p) in str(e.value) and DAMAGED_SNAPSHOTS[kind] in str(e.value), str(e.value)


@pytest.mark.parametrize("kind", ["nan", "bool"])
def test_damaged_weights_validate_infer_freeze(kind, tmp_path, snapshot, val_dir):
    p = make_damaged_snapshot(kind, tmp_path, snapshot)
    img = _good_png(tmp_path / "in.png")
    needle = DAMAGED_SNAPSHOTS[kind]
    assert_user_error(n2n("validate", "--snapshot", p, "--dataset-dir", val_dir), p.name, needle)
    r = n2n("infer", "--snapshot", p, "--image", img, "--out", tmp_path / "o.png")
    assert_user_error(r, p.name, needle)
    r = n2n("freeze", "--snapshot", p, "--out", tmp_path / "m.onnx")
    assert_user_error(r, p.name, needle)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("kind", ["noise-unknown", "noise-params-wrong"])
def test_recorded_noise_that_cannot_be_used(kind, tmp_path, snapshot, val_dir):
    p = make_damaged_snapshot(kind, tmp_path, snapshot)
    r = n2n("validate", "--snapshot", p, "--dataset-dir", val_dir)
    assert_user_error(r, p.name, "noise")
    # --noise names a usable noise: the recorded one is not needed
    if kind == "noise-unknown":
        r = n2n("validate", "--snapshot", p, "--dataset-dir", val_dir, "--noise", "gaussian")
        assert r.code == 0, r.err


# ---------------------------------------------------------------------------
# ONNX models that are not n2n image models (issue 18)


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


BAD_ONNX = {
    "five-channels": "5 channels",
    "two-channels": "2 channels",
    "shrinks": "output",
    "drops-channels": "output",
    "huge-memory": "model failed",
}


@pytest.mark.parametrize("kind", list(BAD_ONNX))
def test_onnx_models_that_are_not_n2n_image_models(kind, tmp_path):
    from n2n_core.evaluation.infer import denoise_files
    from n2n_core.evaluation.onnx import onnx_runner

    m = make_bad_onnx(kind, tmp_path / f"{kind}.onnx")
    img = _good_png(tmp_path / "in.png", (90, 70))
    with pytest.raises(UserError) as e:
        runner, channels = onnx_runner(m)
        list(denoise_files(runner, [(img, tmp_path / "o.png")], channels))
    assert str(m) in str(e.value) and BAD_ONNX[kind] in str(e.value), str(e.value)
    assert not (tmp_path / "o.png").exists()


def test_infer_frozen_that_changes_the_size_cli(tmp_path):
    m = make_bad_onnx("shrinks", tmp_path / "shrinks.onnx")
    img = _good_png(tmp_path / "in.png", (90, 70))
    r = n2n("infer-frozen", "--model", m, "--image", img, "--out", tmp_path / "o.png")
    assert_user_error(r, "shrinks.onnx", "output")
    assert not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------------------
# outputs never replace inputs; special files; flags that must be checked (issue 18)


def test_infer_never_overwrites_its_input(tmp_path, snapshot):
    img = _good_png(tmp_path / "in.png")
    before = img.read_bytes()
    (tmp_path / "link.png").symlink_to(img)
    import os

    os.link(img, tmp_path / "hard.png")
    for out in (img, tmp_path / "link.png", tmp_path / "hard.png", tmp_path):
        r = n2n("infer", "--snapshot", snapshot, "--image", img, "--out", out)
        assert_user_error(r, "overwrite the input")
    folder = tmp_path / "f"
    folder.mkdir()
    _good_png(folder / "a.png")
    r = n2n("infer", "--snapshot", snapshot, "--image", folder, "--out", folder)
    assert_user_error(r, "overwrite the input")
    assert img.read_bytes() == before


def test_infer_frozen_never_overwrites_its_input(tmp_path, snapshot):
    from n2n_core.evaluation.onnx import freeze

    model = freeze(snapshot, tmp_path / "m.onnx")
    img = _good_png(tmp_path / "in.png")
    before = img.read_bytes()
    r = n2n("infer-frozen", "--model", model, "--image", img, "--out", img)
    assert_user_error(r, "overwrite the input")
    assert img.read_bytes() == before


def test_folder_output_names_are_distinct(tmp_path):
    from n2n_core.cli.main import image_jobs

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.gif", "a.png", "b.gif", "c.jpg", "c.png"):
        Image.new("RGB", (8, 8)).save(src / name)
    jobs = image_jobs(str(src), str(tmp_path / "out"))
    names = {s.name: o.name for s, o in jobs}
    assert names == {
        "a.gif": "a.gif.png",
        "a.png": "a.png.png",
        "b.gif": "b.png",
        "c.jpg": "c.jpg",
        "c.png": "c.png",
    }
    assert len({o for _, o in jobs}) == len(jobs)
    # the gif rename must not land on an input either
    jobs = image_jobs(str(src / "b.gif"), str(tmp_path / "out"))
    assert jobs[0][1].name == "b.gif"


def test_exif_orientation_is_applied_on_load(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high, left half bright
    arr[:, :20] = 255
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    im.save(tmp_path / "rot.png", exif=exif)
    for name in ("rot.jpg", "rot.png"):
        got = load_image(tmp_path / name)
        assert got.shape == (40, 20, 3), name  # upright: taller than wide
        assert got[:20].mean() > 200 and got[20:].mean() < 50, name  # left half is now on top


@pytest.mark.parametrize("flag", ["--snapshot", "--image"])
def test_fifo_and_devices_as_inputs_fail_at_once(flag, tmp_path, snapshot):
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    img = _good_png(tmp_path / "in.png")
    args = {"--snapshot": snapshot, "--image": img, "--out": tmp_path / "o.png"}
    for special, needle in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        r = n2n(
            "infer", *[x for k, v in {**args, flag: special}.items() for x in (k, v)], timeout=60
        )
        assert_user_error(r, str(special), needle)


def test_fifo_as_frozen_model_fails_at_once(tmp_path):
    import os

    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    img = _good_png(tmp_path / "in.png")
    r = n2n(
        "infer-frozen", "--model", fifo, "--image", img, "--out", tmp_path / "o.png", timeout=60
    )
    assert_user_error(r, "model.onnx", "FIFO")
    for special in (fifo, tmp_path, Path("/dev/null")):
        with pytest.raises(UserError, match="expected"):
            from n2n_core.evaluation.onnx import open_frozen

            open_frozen(special)


def test_validate_flags_checked(tmp_path, snapshot, val_dir):
    afile = tmp_path / "samples"
    afile.write_text("x")
    r = n2n("validate", "--snapshot", snapshot, "--dataset-dir", val_dir, "--samples-dir", afile)
    assert_user_error(r, "samples", "--samples-dir")
    for seed in ("-1", "4294967296", "x"):
        r = n2n("validate", "--snapshot", snapshot, "--dataset-dir", val_dir, "--seed", seed)
        assert_user_error(r, "--seed")
        r = n2n("validate-frozen", "--model", "m.onnx", "--dataset-dir", val_dir, "--seed", seed)
        assert_user_error(r, "--seed")


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_dir(tmp_path, make_preset):
    res = tmp_path / "ro"
    res.mkdir()
    res.chmod(0o555)
    try:
        r = n2n("run", make_preset(), "--results-dir", res)
        assert_user_error(r, str(res))
    finally:
        res.chmod(0o755)


def test_unwritable_results_dir_in_process(tmp_path, make_preset, monkeypatch):
    """The same as a read-only or immutable folder, for CI that runs as root."""
    import errno
    import pathlib

    from n2n_core.config.preset import load_preset
    from n2n_core.runs.paths import prepare_run

    res = tmp_path / "res"
    res.mkdir()
    real = pathlib.Path.mkdir

    def mkdir(self, *a, **k):
        if self.parent == res:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    with pytest.raises(UserError, match="results directory .*Read-only"):
        prepare_run(load_preset(make_preset()), res, None, ["test"])
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        prepare_run(load_preset(make_preset()), afile, None, ["test"])


def test_special_files_in_run_folders_do_not_hang_readers(tmp_path):
    import os

    from n2n_core.runs.tail import MetricsTail

    res = tmp_path / "results"
    d = res / "00000-fifos"
    d.mkdir(parents=True)
    os.mkfifo(d / "run.json")
    os.mkfifo(d / "metrics.jsonl")
    z = res / "00001-devices"
    z.mkdir()
    (z / "run.json").symlink_to("/dev/zero")
    (z / "metrics.jsonl").symlink_to("/dev/zero")
    r = n2n("runs", "--results-dir", res, "--json", timeout=60)
    assert r.code == 0, r.err
    assert {x["name"] for x in json.loads(r.out)["runs"]} == {"fifos", "devices"}
    for run in (d, z):
        assert n2n("replay", run, "--speed", "0", timeout=60).code == 0
        assert MetricsTail(run / "metrics.jsonl").read_new().items == []


def test_set_override_with_an_alias_bomb_is_refused():
    from n2n_core.config.preset import apply_overrides

    bomb = "[&a [1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], " + ", ".join(
        ["&c [*b,*b,*b,*b,*b,*b,*b,*b,*b]"] + ["*c"] * 40
    )
    with pytest.raises(UserError, match="--set .*alias"):
        apply_overrides({}, ["description=" + bomb + "]"])
    with pytest.raises(UserError, match="--set .*nested"):
        apply_overrides({}, ["description=" + "[" * 200 + "]" * 200])


def test_hostile_preset_in_a_run_folder_does_not_hang_a_filtered_listing(tmp_path):
    import os

    res = tmp_path / "results"
    for i, kind in enumerate(("fifo", "alias-bomb", "duplicate-top-key")):
        d = res / f"{i:05d}-{kind}"
        d.mkdir(parents=True)
        p, _ = make_bad_preset(kind, tmp_path)
        os.replace(p, d / "preset.yaml")
    (res / "00009-dev").mkdir()
    (res / "00009-dev" / "preset.yaml").symlink_to("/dev/zero")
    r = n2n("runs", "--results-dir", res, "--where", "train.steps=1", "--json", timeout=60)
    assert r.code == 0, r.err
    assert json.loads(r.out)["runs"] == []


def test_run_flags_fill_an_empty_runtime_section(make_preset, tmp_path):
    """`runtime:` left empty plus --device works as `--set runtime.device=` does (issue 12)."""
    import yaml

    p = make_preset()
    data = yaml.safe_load(p.read_text())
    data["runtime"] = None
    data["train"]["steps"] = 0  # stops at validation, past the flags, without training
    p.write_text(yaml.safe_dump(data))
    r = n2n("run", p, "--device", "cpu", "--precision", "fp32", "--results-dir", tmp_path / "r")
    assert_user_error(r, "train.steps")


def test_an_escape_sequence_in_a_file_name_is_shown_not_acted_on(tmp_path, make_preset, photo_dir):
    from n2n_core.errors import error_line

    assert error_line("a\x1b[31mb\tc é") == "error: a\\x1b[31mb\\tc é"
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in photo_dir.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    (mixed / "z\x1b[2Jred.png").write_bytes(b"not a png")
    r = n2n("run", make_preset(data__train=str(mixed)), "--results-dir", tmp_path / "res")
    assert_user_error(r, "z\\x1b[2Jred.png")
    assert "\x1b" not in r.err
