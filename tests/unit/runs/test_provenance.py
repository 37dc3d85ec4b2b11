"""What a run records about what produced it (runs/provenance.py): the code's commit and
its diff when dirty, versions, machine, knobs, and an identity of the data that changes
when the data does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from n2n_core.config.diff import ABSENT
from n2n_core.data.images import save_image
from n2n_core.data.packed import build_packed
from n2n_core.runs import provenance as prov
from n2n_core.runs.info import read_run_info, update_run_info
from n2n_core.runs.layout import RunPaths, run_file_owner

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", "a.py")
    _git(root, "commit", "-qm", "one")
    monkeypatch.setattr(prov, "checkout_root", lambda: root)
    return root


@needs_git
def test_clean_then_dirty_checkout(checkout):
    code, diff = prov.code_section()
    assert code["dirty"] is False and diff is None
    assert isinstance(code["commit"], str) and len(code["commit"]) == 40
    (checkout / "a.py").write_text("x = 2\n")
    (checkout / "new.py").write_text("")
    code, diff = prov.code_section()
    assert code["dirty"] is True and code["diff_cut"] is False and code["untracked"] == 1
    assert b"+x = 2" in diff and b"new.py" in diff


@needs_git
def test_a_big_diff_is_cut_and_says_so(checkout, monkeypatch):
    monkeypatch.setattr(prov, "DIFF_CAP", 100)
    (checkout / "a.py").write_text("y = 3\n" * 200)
    code, diff = prov.code_section()
    assert code["diff_cut"] is True
    assert diff.startswith(b"diff --git") and b"diff cut at 100 bytes" in diff
    assert len(diff) < 300


@needs_git
def test_the_users_git_variables_and_a_missing_git_are_tolerated(checkout, monkeypatch, tmp_path):
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    assert prov.code_section()[0]["dirty"] is False
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert prov.code_section() == ({"checkout": None, "commit": None, "dirty": None}, None)


@needs_git
def test_recorded_in_run_json_with_the_diff_beside_it(checkout, tmp_path):
    class Data:
        train, val = "builtin:photos", None

    class Preset:
        data = Data()

    (checkout / "a.py").write_text("x = 3\n")
    run = tmp_path / "00000-r"
    run.mkdir()
    update_run_info(run, status="running")
    prov.record_provenance(run, Preset())
    info = read_run_info(run)
    p = info.provenance
    assert set(p) == {"code", "versions", "host", "knobs", "data"}
    assert p["code"]["diff"] == "code.diff" and p["code"]["dirty"] is True
    assert b"+x = 3" in RunPaths(run).code_diff.read_bytes()
    assert run_file_owner(RunPaths(run).code_diff) == run  # no command writes over it
    v = p["versions"]
    assert isinstance(v["n2n"], str) and isinstance(v["python"], str)
    assert isinstance(v["numpy"], str) and isinstance(v["torch"], str)
    h = p["host"]
    assert isinstance(h["cores"], int) and isinstance(h["cpu_bf16"], bool)
    assert isinstance(h["cpu_flags"], list) and isinstance(h["gpus"], list)
    assert p["data"]["train"]["images"] == 6 and p["data"]["val"] is None
    # rank 0's torch section joins it; a later launcher record keeps it
    import torch

    prov.record_torch_state(run, torch, torch.device("cpu"))
    prov.record_provenance(run, Preset())
    t = read_run_info(run).provenance["torch"]
    assert t["threads"] == torch.get_num_threads()
    assert t["float32_matmul_precision"] in ("highest", "high", "medium")
    assert json.loads((run / "run.json").read_text())["provenance"]["torch"] == t


def test_folder_identity_follows_names_and_sizes_not_times(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        save_image(d / f"{i}.png", np.full((8, 8, 3), i * 40, np.uint8))
    (d / "sub").mkdir()
    (d / "sub" / "notes.txt").write_text("x")
    first = prov.data_identity(str(d))
    assert first["images"] == 3 and first["files"] == 4 and first["hash_of"] == "listing"
    assert first["path"] == str(d.resolve())
    os.utime(d / "0.png", (1, 1))
    assert prov.data_identity(str(d))["hash"] == first["hash"]
    save_image(d / "0.png", np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8))
    assert prov.data_identity(str(d))["hash"] != first["hash"]
    (d / "3.png").write_bytes((d / "1.png").read_bytes())
    assert prov.data_identity(str(d))["images"] == 4
    # own data: the prefix names the same kind of identity
    assert prov.data_identity(f"noisy:{d}")["images"] == 4


def test_packed_set_identity_is_its_header(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        save_image(d / f"{i}.png", np.full((8, 8, 3), i * 40, np.uint8))
    build_packed(d, tmp_path / "set.n2n")
    one = prov.data_identity(str(tmp_path / "set.n2n"))
    assert one["images"] == 2 and one["hash_of"] == "header" and len(one["hash"]) == 64
    save_image(d / "2.png", np.zeros((8, 16, 3), np.uint8))
    build_packed(d, tmp_path / "set.n2n")
    two = prov.data_identity(str(tmp_path / "set.n2n"))
    assert two["images"] == 3 and two["hash"] != one["hash"]
    assert prov.data_identity(str(tmp_path / "missing"))["hash"] is None


def test_builtin_photos_have_an_identity():
    a, b = prov.data_identity("builtin:photos"), prov.data_identity("builtin:photos-val")
    assert (a["images"], b["images"]) == (6, 3)
    assert a["hash"] != b["hash"]


def test_knobs_and_the_difference_of_two_provenances():
    env = {"OMP_NUM_THREADS": "2", "HOME": "/h", "CUDA_VISIBLE_DEVICES": "1"}
    assert prov.knobs_section(env) == {"OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "1"}
    a = {"code": {"commit": "c1", "dirty": False}, "knobs": {"OMP_NUM_THREADS": "2"}}
    b = {"code": {"commit": "c2", "dirty": False, "diff": "code.diff"}, "knobs": {}}
    assert prov.provenance_diff(a, b) == [
        ("code.commit", "c1", "c2"),
        ("knobs.OMP_NUM_THREADS", "2", ABSENT),
        ("knobs", ABSENT, {}),
    ]
    assert prov.provenance_diff(a, a) == []
    assert prov.diff_lines([("code.commit", "c1", "c2")]) == ['code.commit: "c1" -> "c2"']
    # a run of an older version, without provenance, differs in everything it lacks
    assert ("code.commit", ABSENT, "c1") in prov.provenance_diff(None, a)


def test_accelerator_and_toolkit_versions_from_their_own_files(tmp_path, monkeypatch):
    # The NVIDIA driver's /proc files (as on an H100 machine)
    nv = tmp_path / "nvidia"
    (nv / "gpus" / "0000:18:00.0").mkdir(parents=True)
    (nv / "gpus" / "0000:18:00.0" / "information").write_text(
        "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 17\n"
    )
    (nv / "version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
    )
    assert prov._nvidia_gpus(nv) == (["NVIDIA H100 80GB HBM3"], "550.54.15")
    assert prov._nvidia_gpus(tmp_path / "none") == ([], None)
    # CANN's install info, where its set_env.sh points
    home = tmp_path / "cann"
    (home / "aarch64-linux").mkdir(parents=True)
    (home / "aarch64-linux" / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=8.0.RC2\ninnerversion=V100R001C18\n"
    )
    assert prov._cann_version({"ASCEND_TOOLKIT_HOME": str(home)}) == "8.0.RC2"
    # the CUDA torch was built for, read from torch/version.py without importing torch
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "version.py").write_text(
        "cuda: Optional[str] = '12.4'\nhip: Optional[str] = None\n"
    )

    class Dist:
        def locate_file(self, name):
            return tmp_path / name

    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Dist())
    assert prov._torch_build() == {"cuda": "12.4", "hip": None}
