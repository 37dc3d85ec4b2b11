"""ONNX models that are not n2n image models, and special files where a model is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_user_error, n2n_in_process
from helpers.bad_files import good_png, make_bad_onnx

from n2n_core.errors import UserError

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
    img = good_png(tmp_path / "in.png", (90, 70))
    with pytest.raises(UserError) as e:
        runner, channels = onnx_runner(m)
        list(denoise_files(runner, [(img, tmp_path / "o.png")], channels))
    assert str(m) in str(e.value) and BAD_ONNX[kind] in str(e.value), str(e.value)
    assert not (tmp_path / "o.png").exists()


def test_infer_frozen_that_changes_the_size_cli(tmp_path):
    m = make_bad_onnx("shrinks", tmp_path / "shrinks.onnx")
    img = good_png(tmp_path / "in.png", (90, 70))
    r = n2n_in_process("infer-frozen", "--model", m, "--image", img, "--out", tmp_path / "o.png")
    assert_user_error(r, "shrinks.onnx", "output")
    assert not (tmp_path / "o.png").exists()


def test_fifo_as_frozen_model_fails_at_once(tmp_path):
    import os

    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    img = good_png(tmp_path / "in.png")
    r = n2n_in_process(
        "infer-frozen", "--model", fifo, "--image", img, "--out", tmp_path / "o.png", timeout=60
    )
    assert_user_error(r, "model.onnx", "FIFO")
    for special in (fifo, tmp_path, Path("/dev/null")):
        with pytest.raises(UserError, match="expected"):
            from n2n_core.evaluation.onnx import open_frozen

            open_frozen(special)
