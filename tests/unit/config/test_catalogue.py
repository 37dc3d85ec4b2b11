"""Presets found by name: the built-in ones the package carries, a local folder over them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_helpers import n2n_in_process
from helpers import PRESETS

from n2n_core.config.catalogue import builtin_dir, find_preset, list_presets
from n2n_core.errors import UserError


def test_the_builtin_presets_are_the_repository_presets_folder():
    """One set of files: what the package carries is presets/, file for file."""
    shipped = {p.name: p for p in builtin_dir().glob("*.yaml")}
    repo = {p.name: p for p in PRESETS.glob("*.yaml")}
    assert shipped.keys() == repo.keys() and "quickstart.yaml" in shipped
    assert all(os.path.samefile(shipped[n], repo[n]) for n in repo)


def test_a_name_finds_the_builtin_preset_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./presets here
    assert find_preset("quickstart") == builtin_dir() / "quickstart.yaml"
    entries = {e.name: e for e in list_presets()}
    assert entries["photo"].source == "builtin" and not entries["photo"].overrides_builtin


def test_a_local_folder_adds_presets_and_overrides_a_builtin_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "presets"
    local.mkdir()
    (local / "quickstart.yaml").write_text("name: quickstart\ntrain: {steps: 7}\n")
    (local / "mine.yml").write_text("name: mine\ntrain: {steps: 9}\n")
    assert find_preset("quickstart") == Path("presets/quickstart.yaml")
    assert find_preset("mine") == Path("presets/mine.yml")
    entries = {e.name: e for e in list_presets()}
    assert (entries["quickstart"].source, entries["quickstart"].overrides_builtin) == (
        "local",
        True,
    )
    assert (entries["mine"].source, entries["mine"].overrides_builtin) == ("local", False)
    assert entries["photo"].source == "builtin"
    # Another folder named with --presets-dir replaces ./presets.
    other = tmp_path / "other"
    other.mkdir()
    assert find_preset("quickstart", other) == builtin_dir() / "quickstart.yaml"
    with pytest.raises(UserError, match="no such preset"):
        find_preset("mine", other)


def test_a_path_is_that_file_and_an_unknown_name_lists_the_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_preset("some/where.yaml") == Path("some/where.yaml")
    assert find_preset("x.yaml") == Path("x.yaml")
    with pytest.raises(UserError) as e:
        find_preset("quickstrat")
    assert "quickstrat: no such preset" in str(e.value) and "quickstart" in str(e.value)
    with pytest.raises(UserError, match="--presets-dir nowhere: no such folder"):
        find_preset("quickstart", "nowhere")


def test_presets_command_lists_both_with_their_source(tmp_path):
    local = tmp_path / "presets"
    local.mkdir()
    (local / "photo.yaml").write_text("name: photo\ntrain: {steps: 5}\n")
    (local / "broken.yaml").write_text("name: broken\ntrain: {stepz: 5}\n")
    r = n2n_in_process("presets", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    rows = {p["name"]: p for p in out["presets"]}
    assert rows["photo"]["source"] == "local" and rows["photo"]["overrides_builtin"]
    assert rows["photo"]["steps"] == 5
    assert rows["quickstart"]["source"] == "builtin" and rows["quickstart"]["task"] == "image"
    assert rows["broken"]["error"].startswith("presets/broken.yaml: train.")
    assert out["local_dir"] == "presets" and Path(out["builtin_dir"]) == builtin_dir()
    table = n2n_in_process("presets", cwd=tmp_path)
    assert table.code == 0 and "local (overrides built-in)" in table.out
    r = n2n_in_process("presets", "--presets-dir", "nowhere", cwd=tmp_path)
    assert (r.code, r.err.strip()) == (2, "error: --presets-dir nowhere: no such folder")


def test_run_and_sweep_take_a_preset_name(tmp_path):
    """A name reaches the same checks a file does (here: a bad --set, refused before any run)."""
    for cmd in (("run", "quickstart"), ("sweep", "quickstart", "--grid", "train.lr=1e-3,3e-4")):
        r = n2n_in_process(*cmd, "--set", "train.stepz=1", "--results-dir", "r", cwd=tmp_path)
        assert r.code == 2 and "train.stepz" in r.err, (cmd, r.err)
        assert not (tmp_path / "r").exists()
    r = n2n_in_process("run", "quickstrat", cwd=tmp_path)
    assert r.code == 2 and r.err.startswith("error: quickstrat: no such preset")


def test_version():
    r = n2n_in_process("--version")
    assert r.code == 0 and r.out.strip().startswith("n2n-core 0.")
