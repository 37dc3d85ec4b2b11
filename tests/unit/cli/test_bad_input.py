"""The command line's own checks: every bad input gets one `error:` line and exit 2.

What the commands check before any model runs: unknown verbs and bad flag values,
images to denoise that are missing, broken or awkward, outputs that would replace
an input, special files where a file is read. Broken files of each concept (images,
snapshots, presets, run folders) are tested with that concept.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, n2n_in_process
from helpers.bad_files import good_png, make_bad_image
from PIL import Image

# ---------------------------------------------------------------------------
# infer on awkward and bad images


def test_infer_awkward_images(tmp_path, snapshot):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (1, 1), (10, 20, 30)).save(src / "one.png")
    Image.fromarray(np.linspace(0, 65535, 33 * 17).astype(np.uint16).reshape(17, 33)).save(
        src / "g16.png"
    )
    good_png(src / "rgba.png", mode="RGBA")
    good_png(src / "pal.png", mode="P")
    Image.new("CMYK", (9, 8), (0, 255, 255, 0)).save(src / "cmyk.jpg")
    r = n2n_in_process("infer", "--snapshot", snapshot, "--image", src, "--out", tmp_path / "out")
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
        n2n_in_process("infer", "--snapshot", snapshot, "--image", p, "--out", tmp_path / "o.png"),
        p.name,
    )
    assert not (tmp_path / "o.png").exists()


def test_infer_missing_paths(tmp_path, snapshot):
    assert_user_error(
        n2n_in_process(
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
    img = good_png(tmp_path / "in.png")
    assert_user_error(
        n2n_in_process(
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
# verbs and flags


def test_unknown_verb_and_bad_flags():
    assert_user_error(n2n_in_process("frobnicate"), "invalid choice")
    assert_user_error(n2n_in_process("replay", "x", "--speed", "fast"), "--speed")


@pytest.mark.parametrize("name", ["../evil", "a/b", "-x", "", "x" * 65, ".hidden", "white space"])
def test_bad_name_blames_the_name_flag(name, tmp_path, make_preset):
    p = make_preset()
    r = n2n_in_process("run", p, "--name", name, "--results-dir", tmp_path / "res")
    assert_user_error(r, "--name")
    assert p.name not in r.err
    assert not (tmp_path / "res").exists()


# ---------------------------------------------------------------------------
# outputs never replace inputs; special files; flags that must be checked


def test_infer_never_overwrites_its_input(tmp_path, snapshot):
    img = good_png(tmp_path / "in.png")
    before = img.read_bytes()
    (tmp_path / "link.png").symlink_to(img)

    os.link(img, tmp_path / "hard.png")
    for out in (img, tmp_path / "link.png", tmp_path / "hard.png", tmp_path):
        r = n2n_in_process("infer", "--snapshot", snapshot, "--image", img, "--out", out)
        assert_user_error(r, "overwrite the input")
    folder = tmp_path / "f"
    folder.mkdir()
    good_png(folder / "a.png")
    r = n2n_in_process("infer", "--snapshot", snapshot, "--image", folder, "--out", folder)
    assert_user_error(r, "overwrite the input")
    assert img.read_bytes() == before


def test_infer_frozen_never_overwrites_its_input(tmp_path, snapshot):
    from n2n_core.evaluation.onnx import freeze

    model = freeze(snapshot, tmp_path / "m.onnx")
    img = good_png(tmp_path / "in.png")
    before = img.read_bytes()
    r = n2n_in_process("infer-frozen", "--model", model, "--image", img, "--out", img)
    assert_user_error(r, "overwrite the input")
    assert img.read_bytes() == before


def test_folder_output_names_are_distinct(tmp_path):
    from n2n_core.data.images import image_jobs

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


@pytest.mark.parametrize("flag", ["--snapshot", "--image"])
def test_fifo_and_devices_as_inputs_fail_at_once(flag, tmp_path, snapshot):

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    img = good_png(tmp_path / "in.png")
    args = {"--snapshot": snapshot, "--image": img, "--out": tmp_path / "o.png"}
    for special, needle in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        r = n2n_in_process(
            "infer", *[x for k, v in {**args, flag: special}.items() for x in (k, v)], timeout=60
        )
        assert_user_error(r, str(special), needle)


def test_validate_flags_checked(tmp_path, snapshot, val_dir):
    afile = tmp_path / "samples"
    afile.write_text("x")
    r = n2n_in_process(
        "validate", "--snapshot", snapshot, "--dataset-dir", val_dir, "--samples-dir", afile
    )
    assert_user_error(r, "samples", "--samples-dir")
    for seed in ("-1", "4294967296", "x"):
        r = n2n_in_process(
            "validate", "--snapshot", snapshot, "--dataset-dir", val_dir, "--seed", seed
        )
        assert_user_error(r, "--seed")
        r = n2n_in_process(
            "validate-frozen", "--model", "m.onnx", "--dataset-dir", val_dir, "--seed", seed
        )
        assert_user_error(r, "--seed")


def test_run_flags_fill_an_empty_runtime_section(make_preset, tmp_path):
    """`runtime:` left empty plus --device works as `--set runtime.device=` does."""
    import yaml

    p = make_preset()
    data = yaml.safe_load(p.read_text())
    data["runtime"] = None
    data["train"]["steps"] = 0  # stops at validation, past the flags, without training
    p.write_text(yaml.safe_dump(data))
    r = n2n_in_process(
        "run", p, "--device", "cpu", "--precision", "fp32", "--results-dir", tmp_path / "r"
    )
    assert_user_error(r, "train.steps")
