"""Images far too large to decode are one `error:` line naming the file, on every
path that opens images: evaluate, validate, infer, own data, the TUI's pictures."""

from __future__ import annotations

import struct
import zlib

import pytest
import torch

from n2n_core.cli.main import main
from n2n_core.data.images import is_gray_file, load_image
from n2n_core.engine.network import UNet
from n2n_core.engine.snapshots import save_snapshot
from n2n_core.errors import UserError


def _huge_png(path, w=30000, h=30000):
    """A PNG header announcing w x h pixels (the data is a stub: opening reads the header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    )
    return path


@pytest.fixture
def snap(tmp_path):
    torch.manual_seed(0)
    meta = {"step": 1, "preset": {"name": "t"}, "task": "image", "in_channels": 3}
    return save_snapshot(tmp_path / "final.safetensors", UNet(3), meta)


def test_the_image_readers_name_the_bomb(tmp_path):
    bomb = _huge_png(tmp_path / "bomb.png")
    for read in (is_gray_file, load_image):
        with pytest.raises(UserError, match="bomb.png.*(too large|above the limit)"):
            read(bomb)


@pytest.mark.parametrize("command", ["evaluate", "validate", "infer"])
def test_a_bomb_is_one_error_line_for_every_command(tmp_path, snap, capsys, command):
    data = tmp_path / "data"
    data.mkdir()
    _huge_png(data / "bomb.png")
    argv = {
        "evaluate": ["evaluate", str(snap), "--dataset-dir", str(data)],
        "validate": ["validate", "--snapshot", str(snap), "--dataset-dir", str(data)],
        "infer": [
            "infer",
            "--snapshot",
            str(snap),
            "--image",
            str(data / "bomb.png"),
            "--out",
            str(tmp_path / "out.png"),
        ],
    }[command]
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "bomb.png" in err[0], err


def test_the_tuis_picture_loader_refuses_a_bomb(tmp_path):
    from n2n_tui.widgets.images.picture import load_picture

    with pytest.raises(ValueError, match="large|pixels"):
        load_picture(_huge_png(tmp_path / "bomb.png"))
