"""Image files: every broken one is a UserError naming it; awkward ones convert correctly."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.bad_files import good_png, make_bad_image
from PIL import Image

from n2n_core.data.images import load_image
from n2n_core.errors import UserError

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
    good_png(tmp_path / "p.png", mode="P")
    assert load_image(tmp_path / "p.png").shape == (30, 40, 3)
    Image.new("CMYK", (9, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    c = load_image(tmp_path / "c.jpg")
    assert c.shape == (8, 9, 3) and c[4, 4, 0] > 200 and c[4, 4, 1] < 60
    # 1x1
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "one.png")
    assert load_image(tmp_path / "one.png").tolist() == [[[1, 2, 3]]]


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
