"""Training data that is broken: folders, packed files, file names; each one `error:` line."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, n2n_in_process
from helpers.bad_files import DEEP, good_png, make_bad_image

from n2n_core.data.fetch import CATALOGUE, Remote, download
from n2n_core.data.packed import MAGIC, open_packed
from n2n_core.errors import UserError


def test_dataset_build_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(
        n2n_in_process(
            "dataset", "build", "--src", tmp_path / "empty", "--out", tmp_path / "x.n2nd"
        ),
        "empty",
        "no images",
    )
    assert_user_error(
        n2n_in_process(
            "dataset", "build", "--src", tmp_path / "missing", "--out", tmp_path / "x.n2nd"
        ),
        "missing",
    )
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i in range(3):
        good_png(mixed / f"ok{i}.png")
    make_bad_image("truncated", mixed)
    (mixed / "full.png").unlink()
    r = n2n_in_process("dataset", "build", "--src", mixed, "--out", tmp_path / "x.n2nd")
    assert_user_error(r, "truncated.png")
    assert not (tmp_path / "x.n2nd").exists()
    assert not list(tmp_path.glob(".x.n2nd*"))  # no half-written temp file either


def test_dataset_build_then_train_from_packed_file(tmp_path, photo_dir, make_preset):
    out = tmp_path / "photos.n2nd"
    r = n2n_in_process("dataset", "build", "--src", photo_dir, "--out", out)
    assert r.code == 0, r.err and "4 images" in r.out
    p = make_preset(
        data__train=str(out), train__steps=2, train__val_every=0, train__snapshot_every=0
    )
    r = n2n_in_process("run", p, "--results-dir", tmp_path / "res")
    assert r.code == 0, r.err
    # a damaged packed file is refused by name
    bad = tmp_path / "bad.n2nd"
    bad.write_bytes(out.read_bytes()[:1000])
    p = make_preset(data__train=str(bad))
    assert_user_error(n2n_in_process("run", p, "--results-dir", tmp_path / "res2"), "bad.n2nd")


def test_training_folder_with_one_corrupt_image(tmp_path, make_preset, photo_dir):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in photo_dir.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    make_bad_image("zero-bytes", mixed)
    p = make_preset(data__train=str(mixed))
    r = n2n_in_process("run", p, "--results-dir", tmp_path / "res")
    assert_user_error(r, "empty.png")
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())


def test_an_escape_sequence_in_a_file_name_is_shown_not_acted_on(tmp_path, make_preset, photo_dir):
    from n2n_core.errors import error_line

    assert error_line("a\x1b[31mb\tc é") == "error: a\\x1b[31mb\\tc é"
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in photo_dir.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    (mixed / "z\x1b[2Jred.png").write_bytes(b"not a png")
    r = n2n_in_process(
        "run", make_preset(data__train=str(mixed)), "--results-dir", tmp_path / "res"
    )
    assert_user_error(r, "z\\x1b[2Jred.png")
    assert "\x1b" not in r.err


def _packed(path: Path, hlen: int, header: bytes) -> Path:
    path.write_bytes(MAGIC + struct.pack("<Q", hlen) + header)
    return path


def test_packed_header_deep_or_past_the_end_is_one_error(tmp_path, make_preset):
    deep = _packed(tmp_path / "deep.n2nd", len(DEEP), DEEP.encode())
    huge = _packed(tmp_path / "huge.n2nd", 2**63, b"{}")
    big = _packed(tmp_path / "big.n2nd", 2**40, b"{}")  # would allocate a terabyte
    for p in (deep, huge, big):
        with pytest.raises(UserError, match="truncated or corrupt"):
            open_packed(p)
    for p in (deep, huge):
        r = n2n_in_process(
            "run", make_preset(data__train=str(p)), "--results-dir", tmp_path / "res"
        )
        assert_user_error(r, p.name, "corrupt")


def test_folder_at_a_download_is_refused(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(UserError, match="x.png: is a folder"):
        download(Remote("http://127.0.0.1:9/x.png", "0" * 64), tmp_path / "x.png")
    (tmp_path / "y.png.part").mkdir()
    with pytest.raises(UserError, match=r"y.png.part: is a folder"):
        download(Remote("http://127.0.0.1:9/y.png", "0" * 64), tmp_path / "y.png")


@pytest.mark.parametrize("where", ["file-fifo", "file-folder", "part-fifo"])
def test_special_file_where_a_download_lands_is_one_error(where, tmp_path):
    name = CATALOGUE["kodak24"].files[0].file_name
    target = tmp_path / "out" / ".downloads" / "kodak24" / name
    target.parent.mkdir(parents=True)
    if where == "part-fifo":
        target = target.with_name(name + ".part")
    if where.endswith("fifo"):
        os.mkfifo(target)
    else:
        target.mkdir()
    proxy = "http://127.0.0.1:9"  # offline for sure: the check comes before any request
    env = {"http_proxy": proxy, "https_proxy": proxy, "no_proxy": ""}
    env |= {k.upper(): v for k, v in env.items()}
    r = n2n_in_process(
        "dataset", "fetch", "kodak24", "--out", tmp_path / "out", env=env, timeout=60
    )
    assert_user_error(r, target.name, "FIFO" if where.endswith("fifo") else "folder")
