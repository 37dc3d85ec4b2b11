import math

import numpy as np
import pytest

from n2n_core.data.sources import ValImage
from n2n_core.engine.noise import Gaussian
from n2n_core.evaluation.protocol import (
    ColourShift,
    clip_to_uint8,
    colour_shift,
    infer_uint8,
    pad_image,
    psnr,
    to_float,
    validate,
)


def test_uint8_mapping_rounds_half_up_and_clips():
    # clip((y + 0.5) * 255 + 0.5, 0, 255) then truncation: round half up.
    y = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, (10.5 / 255) - 0.5, (10.49 / 255) - 0.5])
    assert clip_to_uint8(y).tolist() == [0, 0, 128, 255, 255, 11, 10]


def test_float_roundtrip_is_exact():
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(clip_to_uint8(to_float(u8)).transpose(1, 2, 0), u8)


def test_psnr_hand_computed():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # one of 12 values off by 10: MSE = 100 / 12
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (100 / 12)))
    assert psnr(a, a) == 100.0


def test_pad_reflects_bottom_right_to_32():
    x = np.arange(3 * 33 * 40, dtype=np.float32).reshape(3, 33, 40)
    p = pad_image(x)
    assert p.shape == (3, 64, 64)
    assert np.array_equal(p[:, :33, :40], x)
    assert np.array_equal(p[:, 33, :40], x[:, 31, :])  # reflect (not edge): row 33 mirrors row 31
    assert np.array_equal(p[:, :33, 40], x[:, :, 38])


def test_pad_handles_tiny_images():
    x = np.full((3, 1, 1), 0.25, np.float32)
    p = pad_image(x)
    assert p.shape == (3, 32, 32) and np.all(p == 0.25)


def test_infer_crops_back_to_original_size():
    seen = []

    def run(batch):
        seen.append(batch.shape)
        return batch  # identity network

    x = np.random.default_rng(0).random((3, 37, 50), dtype=np.float32) - 0.5
    out = infer_uint8(run, x)
    assert seen == [(1, 3, 64, 64)]
    assert np.array_equal(out, clip_to_uint8(x))


def test_validate_protocol_identity_network_gives_input_psnr():
    rng = np.random.default_rng(0)
    imgs = [
        ValImage(f"{i}.png", rng.integers(0, 256, (40, 45, 3), dtype=np.uint8)) for i in range(3)
    ]
    res = validate(lambda b: b, imgs, Gaussian(val_sigma=25), seed=0)
    assert res.images == 3
    assert res.psnr == pytest.approx(res.input_psnr)
    assert 20.0 < res.input_psnr < 21.5  # sigma 25 with clipping of the uint8 mapping
    again = validate(lambda b: b, imgs, Gaussian(val_sigma=25), seed=0)
    assert again.psnr == res.psnr  # fixed seed: identical to the bit
    other = validate(lambda b: b, imgs, Gaussian(val_sigma=25), seed=1)
    assert other.psnr != res.psnr


def test_validate_perfect_denoiser():
    img = [ValImage("a.png", np.full((32, 32, 3), 77, np.uint8))]
    res = validate(lambda b: np.full_like(b, 77 / 255 - 0.5), img, Gaussian(), seed=0)
    assert res.psnr == 100.0


def test_colour_shift_is_mean_denoised_minus_clean_per_channel():
    clean = np.zeros((3, 4, 4), np.uint8) + np.array([10, 100, 200], np.uint8)[:, None, None]
    pred = clean.copy()
    pred[1, :2] += 8  # half of green up by 8 levels: mean +4
    pred[2] -= 3
    assert colour_shift(pred, clean).tolist() == [0.0, 4.0, -3.0]


def test_colour_shift_summary_names_the_worst_image_and_channel():
    shifts = [np.array([0.5, -1.0, 0.0]), np.array([0.0, 2.0, -6.0])]
    c = ColourShift.of(["a.png", "b.png"], shifts)
    assert c.mean_abs == pytest.approx(9.5 / 6)
    assert (c.worst, c.worst_image, c.worst_channel) == (-6.0, "b.png", "B")
    assert c.to_json()["colour_shift_worst"] == -6.0


def test_validate_reports_the_colour_shift_of_a_biased_network():
    img = [ValImage("grass.png", np.full((32, 32, 3), (40, 160, 60), np.uint8))]
    # a "denoiser" that returns the clean image greyed towards its mean by half
    grey = (np.array([40, 160, 60]) / 255 - 0.5).reshape(1, 3, 1, 1)
    out = grey - (grey - grey.mean()) / 2
    res = validate(lambda b: np.broadcast_to(out, b.shape).astype(np.float32), img, Gaussian())
    assert res.colour.worst_channel == "G"
    assert res.colour.worst == pytest.approx(-(160 - 260 / 3) / 2, abs=0.6)
    assert res.to_json()["colour_shift_worst_image"] == "grass.png"
    assert res.per_image[0]["colour_shift"][1] == pytest.approx(res.colour.worst)
