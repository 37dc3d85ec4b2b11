"""Hostile presets: bounded size, alias expansion and nesting; duplicate keys; special files.

Each is refused at once with one `error:` line naming the file and what is wrong,
never a hang, a traceback or gigabytes of memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_user_error, n2n_in_process
from helpers.bad_files import make_bad_preset

from n2n_core.errors import UserError

BAD_PRESETS = [
    "alias-bomb",
    "alias-bomb-in-value",
    "merge-key-bomb",
    "alias-cycle",
    "deep-nesting",
    "deep-mapping",
    "huge-file",
    "duplicate-top-key",
    "duplicate-nested-key",
    "duplicate-flow-key",
    "fifo",
    "folder",
    "not-utf8",
]


@pytest.mark.parametrize("kind", BAD_PRESETS)
def test_hostile_presets_are_refused_at_once(kind, tmp_path):
    from n2n_core.config.loader import read_preset_data

    p, needle = make_bad_preset(kind, tmp_path)
    with pytest.raises(UserError) as e:
        read_preset_data(p)
    msg = str(e.value)
    assert str(p) in msg and needle in msg, msg
    assert len(msg) < 400, "an error message must not grow with the input"


@pytest.mark.parametrize("kind", ["alias-bomb", "fifo", "duplicate-nested-key"])
def test_hostile_presets_cli(kind, tmp_path):
    p, needle = make_bad_preset(kind, tmp_path)
    r = n2n_in_process("run", p, "--results-dir", tmp_path / "res", timeout=60)
    assert_user_error(r, p.name, needle)
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())


def test_special_files_as_preset(tmp_path):
    for dev in ("/dev/zero", "/dev/null"):
        if Path(dev).exists():
            assert_user_error(n2n_in_process("run", dev, timeout=60), dev, "character device")


def test_alias_merge_and_long_values_still_work(tmp_path):
    from n2n_core.config.preset import load_preset

    p = tmp_path / "ok.yaml"
    p.write_text(
        "name: ok\n"
        "base: &b {steps: 5, lr: 0.001}\n"
        "train:\n  <<: *b\n  lr: 0.002\n"  # an explicit key overrides a merged one
    )
    with pytest.raises(UserError, match="base: unknown key"):
        load_preset(p)
    p.write_text(
        "name: ok\n"
        "description: &d " + "x" * 50_000 + "\n"
        "train: &t\n  steps: 5\n"
        "runtime: {device: cpu}\n"
    )
    pre = load_preset(p)
    assert pre.train.steps == 5 and len(pre.description) == 50_000


def test_error_messages_do_not_embed_large_values(tmp_path):
    from n2n_core.config.preset import load_preset

    p = tmp_path / "big.yaml"
    p.write_text("name: ok\ntrain: {steps: 5}\ntask: " + "x" * 100_000 + "\n")
    with pytest.raises(UserError) as e:
        load_preset(p)
    assert "task" in str(e.value) and len(str(e.value)) < 400
    p.write_text("name: ok\ntrain: {steps: 5}\n" + "k" * 1000 + ": 1\n")
    with pytest.raises(UserError) as e:
        load_preset(p)
    assert "unknown key" in str(e.value) and len(str(e.value)) < 400


def test_merge_key_override_is_not_a_duplicate(tmp_path):
    from n2n_core.config.preset import load_preset

    p = tmp_path / "merge.yaml"
    p.write_text("name: ok\ntrain:\n  <<: {steps: 5, lr: 0.001}\n  lr: 0.002\n")
    pre = load_preset(p)
    assert pre.train.steps == 5 and pre.train.lr == 0.002


def test_set_override_with_an_alias_bomb_is_refused():
    from n2n_core.config.overrides import apply_overrides

    bomb = "[&a [1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], " + ", ".join(
        ["&c [*b,*b,*b,*b,*b,*b,*b,*b,*b]"] + ["*c"] * 40
    )
    with pytest.raises(UserError, match="--set .*alias"):
        apply_overrides({}, ["description=" + bomb + "]"])
    with pytest.raises(UserError, match="--set .*nested"):
        apply_overrides({}, ["description=" + "[" * 200 + "]" * 200])


@pytest.mark.parametrize(
    "setting, key",
    [
        ("train.seed=99999999999999999999999", "train.seed"),
        ("train.seed=4294967296", "train.seed"),
        ("train.steps=10000000000", "train.steps"),
        ("train.steps=true", "train.steps"),
        ("train.seed=true", "train.seed"),
        ("runtime.sys_every=inf", "runtime.sys_every"),
        ("runtime.sys_every=1e12", "runtime.sys_every"),
        ("runtime.sys_every=nan", "runtime.sys_every"),
        ("data.train=", "data.train"),  # empty: was "error: : no images found"
        ("data.train=noisy:  ", "data.train"),
        ("data.val=clean:", "data.val"),
        ("network.padding=reflect", "network.padding"),
    ],
)
def test_out_of_range_numbers_are_preset_errors_before_any_run_folder(
    setting, key, make_preset, tmp_path
):
    r = n2n_in_process("run", make_preset(), "--set", setting, "--results-dir", tmp_path / "res")
    assert_user_error(r, key)
    assert not (tmp_path / "res").exists()
