from pathlib import Path

import pytest
import yaml
from helpers import PRESETS as PRESET_DIR

from n2n_core.config.overrides import apply_overrides
from n2n_core.config.preset import load_preset
from n2n_core.config.schema import Preset, validate_preset
from n2n_core.errors import UserError

PRESETS = sorted(PRESET_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_loads_and_validates(path):
    preset = load_preset(path)
    assert isinstance(preset, Preset)
    assert preset.name
    assert preset.train.steps > 0


def test_presets_include_the_reproduction_set():
    names = {p.stem for p in PRESETS}
    assert {
        "quickstart",
        "gaussian-n2n",
        "gaussian-n2c",
        "poisson-n2n",
        "poisson-n2c",
        "text-n2n",
        "impulse-n2n",
        "bernoulli-n2n",
    } <= names


def test_reproduction_presets_keep_full_fp32_math():
    """The seed ran every command with --op-select-implmode=high_precision, in fp32."""
    for p in PRESETS:
        preset = load_preset(p)
        if preset.data.train.startswith(("datasets/imagenet", "datasets/ixi")):
            assert preset.runtime.math == "high_precision", p.name
            assert preset.runtime.precision == "fp32", p.name


def test_mri_presets_run_312_steps_per_epoch():
    for name in ("mri-n2n", "mri-n2c"):
        p = load_preset(PRESETS[0].parent / f"{name}.yaml")
        assert p.train.steps == 312 * p.mri.epochs


def _base():
    return {"name": "x", "train": {"steps": 10}}


@pytest.mark.parametrize(
    "patch,needle",
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"train": {"steps": 10, "stepz": 1}}, "train.stepz: unknown key"),
        ({"train": {"steps": "many"}}, "train.steps:"),
        ({"train": {"steps": 0}}, "train.steps:"),
        ({"train": {"steps": 10, "crop": 100}}, "train.crop: must be a multiple of 32"),
        ({"train": {"steps": 10, "lr": -1}}, "train.lr:"),
        ({"noise": {"type": "speckle"}}, "noise.type: unsupported value 'speckle'"),
        ({"noise": {"type": "gaussian", "sigma": 3}}, "noise.sigma: unknown key"),
        ({"noise": {"type": "gaussian", "train_sigma": [50, 0]}}, "noise.train_sigma:"),
        ({"noise": {"sigma": 3}}, "noise: needs a 'type' key"),
        ({"runtime": {"precision": "fp8"}}, "runtime.precision: unsupported value 'fp8'"),
        ({"runtime": {"device": "tpu"}}, "runtime.device: unsupported value 'tpu'"),
        ({"targets": "both"}, "targets:"),
        ({"name": "has space"}, "name:"),
    ],
)
def test_validation_errors_name_the_key(patch, needle):
    data = _base()
    data.update(patch)
    with pytest.raises(UserError) as e:
        validate_preset(data, "p.yaml")
    msg = str(e.value)
    assert msg.startswith("p.yaml: ")
    assert needle in msg
    assert "\n" not in msg


def test_missing_required_key():
    with pytest.raises(UserError, match="train: required key is missing"):
        validate_preset({"name": "x"}, "p.yaml")


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "got empty file"),
        ("- a\n- b\n", "got a list"),
        ("name: [unclosed\n", "YAML syntax error at line"),
        ("just a string", "got a str"),
    ],
)
def test_bad_yaml_files(tmp_path, text, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match=needle):
        load_preset(p)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="preset file not found"):
        load_preset(tmp_path / "nope.yaml")


def test_overrides_by_dotted_path(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(_base()))
    preset = load_preset(p, ["train.steps=200", "noise.type=poisson", "runtime.precision=bf16"])
    assert preset.train.steps == 200
    assert preset.noise.type == "poisson"
    assert preset.runtime.precision == "bf16"
    with pytest.raises(UserError, match="train.steps"):
        load_preset(p, ["train.steps=abc"])
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.steps"])


def test_auto_loss_is_the_papers_choice():
    def loss(noise):
        return validate_preset({**_base(), "noise": {"type": noise}}).resolved_loss()

    assert loss("gaussian") == "l2"
    assert loss("poisson") == "l2"
    assert loss("text") == "l1"
    assert loss("impulse") == "l0"


def test_data_spec_parses_each_prefix_once():
    from n2n_core.config.schema import DataSpec

    assert DataSpec.parse("builtin:photos") == DataSpec("builtin", "photos", "builtin:photos")
    ds = DataSpec.parse("pairs: ~/own ")
    assert (ds.kind, ds.value, ds.own_mode, str(ds)) == ("pairs", "~/own", "pairs", "pairs: ~/own ")
    assert ds.path == Path("~/own").expanduser()
    assert DataSpec.parse("noisy:d").own_mode == "noisy"
    assert DataSpec.parse("clean:d").kind == "clean" and DataSpec.parse("clean:d").own_mode is None
    assert DataSpec.parse("C:/photos").kind == "path"  # a drive letter is not a prefix
    assert DataSpec.parse("datasets/x").path == Path("datasets/x")
    assert DataSpec.parse("builtin:photos").path is None


def test_cli_and_launch_choices_come_from_the_config_types():
    from typing import get_args

    from n2n_core.cli.parser import build_parser
    from n2n_core.config.schema import NOISE_TYPES, Device, Precision

    def choices(cmd: str, flag: str) -> list:
        sub = next(a for a in build_parser()._actions if a.dest == "cmd").choices[cmd]
        return list(next(a for a in sub._actions if flag in a.option_strings).choices)

    assert choices("run", "--device") == list(get_args(Device)) == choices("infer", "--device")
    assert choices("run", "--precision") == list(get_args(Precision))
    assert "none" in NOISE_TYPES and "gaussian" in NOISE_TYPES
    assert choices("validate", "--noise") == [n for n in NOISE_TYPES if n != "none"]
