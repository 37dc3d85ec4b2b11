"""`dataset fetch` against a local HTTP server: resume, checksum, extraction, build, offline."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import n2n_in_process
from helpers import PRESETS
from PIL import Image

from n2n_core.data.fetch import CATALOGUE, Remote, Source, download, extract, fetch_dataset
from n2n_core.data.packed import open_packed
from n2n_core.errors import UserError


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


class Server:
    """Serves ``files`` on 127.0.0.1 with HTTP Range; ``break_once`` cuts a file's first
    response after half its bytes (Content-Length still promising all of it)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.break_once: set[str] = set()
        self.ranges: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                data = outer.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in outer.break_once:
                    outer.break_once.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        # shutdown() waits for the next poll: 0.5 s per test at the default interval.
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_broken_connection_is_resumed_with_range(server, tmp_path):
    data = bytes(range(256)) * 4096  # 1 MiB
    server.files["big.bin"] = data
    server.break_once.add("big.bin")
    seen = []
    out = download(
        Remote(server.url + "big.bin", _sha(data)),
        tmp_path / "big.bin",
        lambda name, done, total: seen.append((done, total)),
    )
    assert out.read_bytes() == data
    assert server.ranges[0] is None and server.ranges[1] == f"bytes={len(data) // 2}-"
    assert seen[-1] == (len(data), len(data))
    assert not (tmp_path / "big.bin.part").exists()


def test_checksum_mismatch_removes_the_download(server, tmp_path):
    server.files["a.zip"] = b"not what was pinned"
    with pytest.raises(UserError, match="SHA-256 mismatch"):
        download(Remote(server.url + "a.zip", "0" * 64), tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / "a.zip.part").exists()


def test_offline_is_one_clear_error(tmp_path):
    port = _closed_port()
    with pytest.raises(UserError, match="cannot reach 127.0.0.1"):
        download(Remote(f"http://127.0.0.1:{port}/x.zip", "0" * 64), tmp_path / "x.zip")


def test_fetch_extracts_and_packs_a_training_set(server, tmp_path):
    archive = _zip({f"set/img{i}.png": _png(i) for i in range(3)} | {"set/readme.txt": b"hi"})
    server.files["set.zip"] = archive
    src = Source(
        "tiny", "test", (Remote(server.url + "set.zip", _sha(archive)),), "set", "pack", "tiny.n2nd"
    )
    out = fetch_dataset(src, tmp_path / "data", say=lambda m: None)
    assert out == tmp_path / "data" / "tiny.n2nd"
    arrays, names, channels = open_packed(out)
    assert names == ["img0.png", "img1.png", "img2.png"] and channels == 3
    # a second fetch reuses the verified download instead of fetching again
    n = len(server.ranges)
    out.unlink()
    fetch_dataset(src, tmp_path / "data", say=lambda m: None)
    assert len(server.ranges) == n


def test_validation_folder_and_unpinned_sets(server, tmp_path):
    png = _png(7)
    server.files["k1.png"] = png
    src = Source("val", "test", (Remote(server.url + "k1.png", None),), ".", "folder", "val")
    with pytest.raises(UserError, match="--sha256"):
        fetch_dataset(src, tmp_path / "d", say=lambda m: None)
    out = fetch_dataset(src, tmp_path / "d", sha256=_sha(png), say=lambda m: None)
    assert (out / "k1.png").read_bytes() == png


def test_archives_cannot_write_outside_their_folder(tmp_path):
    evil = tmp_path / "evil.zip"
    evil.write_bytes(_zip({"../outside.txt": b"x"}))
    with pytest.raises(UserError, match="outside"):
        extract(evil, tmp_path / "x")
    assert not (tmp_path / "outside.txt").exists()
    tgz = tmp_path / "link.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    with pytest.raises(UserError, match="link"):
        extract(tgz, tmp_path / "y")


def test_user_archive_is_checked_against_its_pin(tmp_path):
    archive = tmp_path / "val.tar"
    with tarfile.open(archive, "w") as t:
        data = _png(1)
        info = tarfile.TarInfo("ILSVRC_val_1.png")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    src = Source("inet", "t", (Remote("val.tar", "1" * 64),), ".", "pack", "i.n2nd", True)
    with pytest.raises(UserError, match="--archive"):
        fetch_dataset(src, tmp_path / "o", say=lambda m: None)
    with pytest.raises(UserError, match="SHA-256 mismatch"):
        fetch_dataset(src, tmp_path / "o", archive=archive, say=lambda m: None)
    ok = Source(
        "inet", "t", (Remote("val.tar", _sha(archive.read_bytes())),), ".", "pack", "i.n2nd", True
    )
    assert open_packed(fetch_dataset(ok, tmp_path / "o", archive=archive, say=print))[1] == [
        "ILSVRC_val_1.png"
    ]


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_cli_offline_and_unknown_names(tmp_path):
    # "Offline" for sure, network or not: every request goes to a proxy nobody runs.
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {"https_proxy": proxy, "http_proxy": proxy, "no_proxy": ""}
    env |= {k.upper(): v for k, v in env.items()}
    r = n2n_in_process("dataset", "fetch", "kodak24", "--out", tmp_path, env=env)
    assert "cannot reach raw.githubusercontent.com" in r.err, r.err
    assert r.code == 2 and r.err.startswith("error: ") and len(r.err.strip().splitlines()) == 1
    r = n2n_in_process("dataset", "fetch", "nope", "--out", tmp_path)
    assert r.code == 2
    assert Path(tmp_path).exists()


def test_bsd300_archive_gives_a_training_set_and_a_disjoint_validation_set(tmp_path):
    """One BSDS300 archive: `bsd300-train` builds its train folder (for photo-bsd300),
    `bsd300` its test folder; no photo lands in both."""
    from n2n_core.data.fetch import CATALOGUE

    archive = tmp_path / "BSDS300-images.tgz"
    with tarfile.open(archive, "w:gz") as t:
        for split, seeds in (("train", range(3)), ("test", range(10, 12))):
            for i in seeds:
                data = _png(i)
                info = tarfile.TarInfo(f"BSDS300/images/{split}/{i}.jpg")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    sha = _sha(archive.read_bytes())
    said: list[str] = []
    train = fetch_dataset(
        CATALOGUE["bsd300-train"], tmp_path / "d", sha256=sha, archive=archive, say=said.append
    )
    val = fetch_dataset(CATALOGUE["bsd300"], tmp_path / "d", sha256=sha, archive=archive)
    assert train == tmp_path / "d" / "bsd300-train" and val == tmp_path / "d" / "bsd300"
    assert sorted(p.name for p in train.iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert sorted(p.name for p in val.iterdir()) == ["10.jpg", "11.jpg"]
    assert any("3 images (use as data.train)" in m for m in said)


def test_a_missing_data_set_names_the_fetch_that_makes_it(tmp_path):
    from cli_helpers import assert_user_error

    from n2n_core.data.fetch import fetch_hint

    assert fetch_hint(Path("datasets/bsd300-train")) == (
        "n2n-core dataset fetch bsd300-train --out datasets --sha256 HEX"
    )
    assert fetch_hint(Path("d/div2k.n2nd")) == "n2n-core dataset fetch div2k --out d"
    assert fetch_hint(Path("my/photos")) is None
    # The preset as shipped, its data set looked for where this test knows it is absent.
    preset = PRESETS / "photo-bsd300.yaml"
    where = tmp_path / "datasets" / "bsd300-train"
    copy = tmp_path / "p.yaml"
    copy.write_text(preset.read_text().replace("datasets/bsd300-train", str(where)))
    r = n2n_in_process("run", copy, "--results-dir", tmp_path / "r")
    assert_user_error(r, "data.train", f"n2n-core dataset fetch bsd300-train --out {where.parent}")
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())


def test_kodak24_and_set14_are_pinned_file_by_file_at_a_fixed_commit():
    """The Kodak24 every figure here is measured on, and Set14: fetchable without a
    hash from the user, each file pinned, from a commit that cannot change under us."""
    import re

    for name, count in (("kodak24", 24), ("set14", 14)):
        files = CATALOGUE[name].files
        assert len(files) == count and all(f.sha256 and len(f.sha256) == 64 for f in files)
        assert len({f.file_name for f in files}) == count
        assert all(re.search(r"/[0-9a-f]{40}/", f.url) for f in files)
    assert CATALOGUE["set14"].files[0].file_name == "baboon.png"
    assert [f.file_name for f in CATALOGUE["kodak24"].files][-1] == "kodim24.png"


def test_a_set_of_many_unpinned_files_is_pinned_by_a_sha256sums_file(server, tmp_path):
    pngs = {f"k{i}.png": _png(20 + i) for i in (1, 2)}
    server.files.update(pngs)
    src = Source(
        "many",
        "test",
        tuple(Remote(server.url + n, None) for n in pngs),
        ".",
        "folder",
        "many",
    )
    with pytest.raises(UserError, match="--sha256 FILE"):
        fetch_dataset(src, tmp_path / "d", say=lambda m: None)
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{_sha(pngs['k1.png'])}  k1.png\n")
    with pytest.raises(UserError, match="no line for k2.png"):
        fetch_dataset(src, tmp_path / "d", sha256=str(sums), say=lambda m: None)
    sums.write_text("".join(f"{_sha(d)} *{n}\n" for n, d in pngs.items()))  # binary-mode lines
    out = fetch_dataset(src, tmp_path / "d", sha256=str(sums), say=lambda m: None)
    assert sorted(p.name for p in out.iterdir()) == ["k1.png", "k2.png"]
    assert (out / "k2.png").read_bytes() == pngs["k2.png"]
    with pytest.raises(UserError, match="neither a SHA-256"):
        fetch_dataset(src, tmp_path / "e", sha256="not-a-hash", say=lambda m: None)
    sums.write_text("garbage\n")
    with pytest.raises(UserError, match="line 1"):
        fetch_dataset(src, tmp_path / "e", sha256=str(sums), say=lambda m: None)
