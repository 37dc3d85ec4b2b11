"""The trained models in the box: each reproduces its recorded score, and every command that
takes a snapshot takes ``builtin:NAME``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import n2n_in_process
from PIL import Image
from safetensors import safe_open

from n2n_core.errors import UserError
from n2n_core.pretrained import HOLDOUT, list_models, model_names, read_model, resolve_snapshot

SHIPPED = ("photo", "quickstart")


def test_photo_and_quickstart_ship_compactly_with_their_record():
    assert set(SHIPPED) <= set(model_names())
    for name in SHIPPED:
        m = read_model(name)
        assert m.path.stat().st_size < 3_000_000  # fp16: about 2 MB
        with safe_open(str(m.path), framework="numpy") as f:
            assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}
            meta = f.metadata()
        assert m.preset == name  # trained with the preset of its name
        assert json.loads(meta["step"]) == m.steps == json.loads(meta["preset"])["train"]["steps"]
        assert len(m.commit) == 40 and int(m.commit, 16) >= 0
        assert m.retrain.startswith("n2n-core run ")
        assert m.score(HOLDOUT) is not None


@pytest.mark.parametrize("name", SHIPPED)
def test_each_model_reproduces_its_recorded_psnr_on_the_holdout_photo(name):
    recorded = read_model(name).score(HOLDOUT)
    r = n2n_in_process(
        "validate", "--snapshot", f"builtin:{name}", "--dataset-dir", HOLDOUT, "--json"
    )
    assert r.code == 0, r.err
    got = json.loads(r.out)
    assert abs(got["psnr"] - recorded.psnr) <= 0.01
    assert abs(got["input_psnr"] - recorded.input_psnr) <= 0.01
    assert abs(got["colour_shift"] - recorded.colour_shift) <= 0.01


def test_models_command_lists_them():
    r = n2n_in_process("models", "--json")
    assert r.code == 0, r.err
    rows = {m["name"]: m for m in json.loads(r.out)["models"]}
    assert {f"builtin:{n}" for n in SHIPPED} <= rows.keys()
    photo = rows["builtin:photo"]
    assert photo["preset"] == "photo" and photo["dtype"] == "float16"
    assert photo["scores"][0]["dataset"] == HOLDOUT
    table = n2n_in_process("models")
    assert table.code == 0 and "builtin:quickstart" in table.out


def test_infer_without_a_snapshot_uses_builtin_photo_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    noisy = tmp_path / "noisy.png"
    Image.fromarray(rng.integers(0, 256, (40, 72, 3), dtype=np.uint8)).save(noisy)
    r = n2n_in_process("infer", "--image", "noisy.png", "--out", "clean.png", cwd=tmp_path)
    assert r.code == 0, r.err
    assert "builtin:photo" in r.err
    out = np.asarray(Image.open(tmp_path / "clean.png"))
    assert out.shape == (40, 72, 3)
    # The same as naming it.
    r2 = n2n_in_process(
        "infer", "--snapshot", "builtin:photo", "--image", "noisy.png", "--out", "b.png",
        cwd=tmp_path,
    )  # fmt: skip
    assert r2.code == 0 and "builtin" not in r2.err
    assert np.array_equal(out, np.asarray(Image.open(tmp_path / "b.png")))


def test_freeze_and_evaluate_take_a_builtin_model(tmp_path):
    r = n2n_in_process(
        "freeze", "--snapshot", "builtin:quickstart", "--out", "q.onnx", cwd=tmp_path
    )
    assert r.code == 0, r.err
    assert (tmp_path / "q.onnx").stat().st_size > 1_000_000
    r = n2n_in_process(
        "evaluate", "builtin:quickstart", "--dataset-dir", HOLDOUT, "--json", cwd=tmp_path
    )
    assert r.code == 0, r.err
    cell = json.loads(r.out)["results"][0]
    assert cell["snapshot"] == "builtin:quickstart"
    assert abs(cell["psnr"] - read_model("quickstart").score(HOLDOUT).psnr) <= 0.01


def test_an_unknown_builtin_model_is_one_error_line(tmp_path):
    with pytest.raises(UserError, match="builtin:nope: no such built-in model"):
        resolve_snapshot("builtin:nope")
    r = n2n_in_process(
        "validate", "--snapshot", "builtin:photos", "--dataset-dir", HOLDOUT, cwd=tmp_path
    )
    assert r.code == 2
    assert r.err.startswith("error: builtin:photos: no such built-in model (have: builtin:photo")
    assert "data sets" in r.err and len(r.err.strip().splitlines()) == 1
    r = n2n_in_process("evaluate", "builtin:nope", "--dataset-dir", HOLDOUT, cwd=tmp_path)
    assert r.code == 2 and "builtin:nope: no such built-in model" in r.err


def test_the_tui_lists_the_models_without_torch():
    """Listing reads each file's metadata only: the TUI never loads torch for it."""
    assert [m.name for m in list_models()] == model_names()
    code = (
        "import sys; from n2n_tui.models.snapshots import builtin_models\n"
        "names = [s.name for s in builtin_models()]\n"
        "print(names, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{[f'builtin:{n}' for n in model_names()]} False"
