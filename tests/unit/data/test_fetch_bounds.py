"""`dataset fetch` within bounds: what a server or an archive can make us write is
capped (bytes, members, depth, names), a trickling server is a stall, staging is
fresh, and nothing is written through a link planted under --out."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
import time
import zipfile

import pytest

from n2n_core.data.fetch import Remote, Source, download, extract, fetch_dataset
from n2n_core.errors import UserError


class Streamer:
    """A server whose answers misbehave: endless, lying about their size, or trickling."""

    def __init__(self, mode: str):
        outer = self
        self.mode = mode

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                if outer.mode == "huge":
                    self.send_header("Content-Length", str(10**15))
                self.end_headers()
                try:
                    if outer.mode == "trickle":
                        for _ in range(200):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(0.05)
                        return
                    block = b"\0" * 65536
                    for _ in range(10_000):  # 640 MB at most: the cap must stop it long before
                        self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/f.bin"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("mode", ["endless", "huge"])
def test_a_download_never_writes_past_its_cap(tmp_path, mode):
    srv = Streamer(mode)
    try:
        with pytest.raises(UserError, match="cap|announced"):
            download(Remote(srv.url, "0" * 64), tmp_path / "f.bin", max_bytes=1 << 20)
    finally:
        srv.close()
    written = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert written <= 1 << 20


def test_a_trickling_server_is_a_stall_not_a_hang(tmp_path):
    srv = Streamer("trickle")
    t0 = time.monotonic()
    try:
        with pytest.raises(UserError, match="stalled"):
            download(Remote(srv.url, "0" * 64), tmp_path / "f.bin", stall=(1.0, 1000))
    finally:
        srv.close()
    assert time.monotonic() - t0 < 8


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_an_archive_bomb_is_refused_within_its_budget(tmp_path):
    bomb = tmp_path / "bomb.tgz"
    bomb.write_bytes(_tgz({"zeros.bin": b"\0" * (8 << 20)}))  # 8 MB from ~8 KB
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(UserError, match="extracts to more than"):
        extract(bomb, tmp_path / "out", max_bytes=1 << 20)
    extracted = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert extracted <= 1 << 20


def test_a_zip_bomb_declaring_its_size_is_refused_before_writing(tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr("zeros.bin", b"\0" * (4 << 20))
    with pytest.raises(UserError, match="extracts to more than"):
        extract(z, tmp_path / "out", max_bytes=1 << 20)
    assert not list((tmp_path / "out").rglob("*.bin"))


@pytest.mark.parametrize(
    "members",
    [
        {"file": b"a", "file/b": b"b"},  # a file where a folder should be
        {"/".join(["d"] * 3000) + "/x": b"x"},  # nested far deeper than any data set
        {"n" * 300 + ".png": b"x"},  # a name no file system takes
    ],
    ids=["file-then-folder", "3000-levels", "300-char-name"],
)
def test_awkward_members_are_one_error(tmp_path, members):
    arc = tmp_path / "a.tgz"
    arc.write_bytes(_tgz(members))
    with pytest.raises(UserError) as e:
        extract(arc, tmp_path / "out")
    assert str(arc) in str(e.value) or "member" in str(e.value)


def test_only_what_this_archive_held_is_built(tmp_path):
    """Files planted in --out (by hand or by an earlier refused archive) never reach the
    data set: extraction stages in a fresh folder and builds from it alone."""
    from n2n_core.data.fetch import sha256_file

    out = tmp_path / "out"
    out.mkdir()
    for stale in (out / ".demo-files", out / ".demo-files" / "imgs"):
        stale.mkdir(exist_ok=True)
    (out / ".demo-files" / "imgs" / "planted.png").write_bytes(b"not ours")
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "PNG")
    arc = tmp_path / "demo.tgz"
    arc.write_bytes(_tgz({"imgs/a.png": buf.getvalue()}))
    src = Source("demo", "demo", (Remote("demo.tgz", sha256_file(arc)),), "imgs", "folder", "demo")
    dest = fetch_dataset(src, out, archive=arc, say=lambda m: None)
    assert sorted(p.name for p in dest.iterdir()) == ["a.png"]
    assert not [p for p in out.iterdir() if p.name.startswith(".demo-files-")]  # staging gone


def test_no_download_goes_through_a_planted_link(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (out / ".downloads").symlink_to(victim)
    src = Source(
        "demo", "demo", (Remote("http://127.0.0.1:9/x.png", "0" * 64),), ".", "folder", "demo"
    )
    with pytest.raises(UserError, match="symlink"):
        fetch_dataset(src, out, say=lambda m: None)
    assert list(victim.iterdir()) == []
    part_dir = tmp_path / "p"
    part_dir.mkdir()
    target = tmp_path / "precious"
    target.write_text("keep")
    (part_dir / "x.png.part").symlink_to(target)
    srv = Streamer("endless")
    try:
        with pytest.raises(UserError, match="symlink"):
            download(Remote(srv.url, "0" * 64), part_dir / "x.png", max_bytes=1 << 16)
    finally:
        srv.close()
    assert target.read_text() == "keep"
