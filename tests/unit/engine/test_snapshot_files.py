"""Snapshots that must not be trusted: never unpickled, damaged weights and metadata refused by name."""

from __future__ import annotations

import pytest
from cli_helpers import assert_user_error, n2n_in_process
from helpers.bad_files import good_png, make_bad_snapshot, make_damaged_snapshot

from n2n_core.errors import UserError

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
    img = good_png(tmp_path / "in.png")
    assert_user_error(n2n_in_process("validate", "--snapshot", p, "--dataset-dir", val_dir), p.name)
    assert_user_error(
        n2n_in_process("infer", "--snapshot", p, "--image", img, "--out", tmp_path / "o.png"),
        p.name,
    )
    assert not (tmp_path / "o.png").exists()
    assert not (tmp_path / "PWNED").exists(), "a snapshot was unpickled"


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
    img = good_png(tmp_path / "in.png")
    needle = DAMAGED_SNAPSHOTS[kind]
    assert_user_error(
        n2n_in_process("validate", "--snapshot", p, "--dataset-dir", val_dir), p.name, needle
    )
    r = n2n_in_process("infer", "--snapshot", p, "--image", img, "--out", tmp_path / "o.png")
    assert_user_error(r, p.name, needle)
    r = n2n_in_process("freeze", "--snapshot", p, "--out", tmp_path / "m.onnx")
    assert_user_error(r, p.name, needle)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("kind", ["noise-unknown", "noise-params-wrong"])
def test_recorded_noise_that_cannot_be_used(kind, tmp_path, snapshot, val_dir):
    p = make_damaged_snapshot(kind, tmp_path, snapshot)
    r = n2n_in_process("validate", "--snapshot", p, "--dataset-dir", val_dir)
    assert_user_error(r, p.name, "noise")
    # --noise names a usable noise: the recorded one is not needed
    if kind == "noise-unknown":
        r = n2n_in_process(
            "validate", "--snapshot", p, "--dataset-dir", val_dir, "--noise", "gaussian"
        )
        assert r.code == 0, r.err
