"""The wheel is the product: built, installed into a fresh virtual environment, and used from
an empty folder -- nothing read from this repository's working tree.

The fresh environment gets only the wheel; its dependencies are the ones already
installed for the tests (a ``.pth`` line puts their site-packages folder on its
path), so no network is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from helpers import PRESETS, REPO
from PIL import Image

SOURCES = ("pyproject.toml", "README.md", "n2n_core", "n2n_tui")


def _sh(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(the fresh environment's bin folder, the environment to run it with, an empty folder)."""
    tmp = tmp_path_factory.mktemp("installed")
    # A copy of the sources (links followed: the package's presets are files in it), so
    # that the build sees nothing else of the working tree and leaves nothing in it.
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, src / name)
    _sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--no-index", "-w", tmp / "dist", src)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("n2n-*.whl")
    venv = tmp / "venv"
    _sh(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = _sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib.stdout.strip(), "_n2n_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _sh(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("N2N_DEBUG", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp / "work"
    work.mkdir()
    return venv / "bin", env, work


def test_the_package_comes_from_the_wheel_with_its_version(installed):
    bin_dir, env, work = installed
    venv = bin_dir.parent
    where = _sh(bin_dir / "python", "-c",
                "import n2n_core, n2n_tui; print(n2n_core.__file__); print(n2n_tui.__file__)",
                cwd=work, env=env).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(venv) for p in where), where
    for cmd in ("n2n-core", "n2n-tui"):
        r = _sh(bin_dir / cmd, "--version", cwd=work, env=env)
        assert r.stdout.strip() == f"{cmd} {version('n2n')}"


def test_presets_and_models_ship_in_the_wheel(installed):
    bin_dir, env, work = installed
    out = json.loads(_sh(bin_dir / "n2n-core", "presets", "--json", cwd=work, env=env).stdout)
    shipped = {p["name"]: p for p in out["presets"]}
    assert shipped.keys() == {p.stem for p in PRESETS.glob("*.yaml")}
    for name, p in shipped.items():
        assert p["source"] == "builtin" and "error" not in p, name
        assert Path(p["path"]).read_bytes() == (PRESETS / f"{name}.yaml").read_bytes()
    models = json.loads(_sh(bin_dir / "n2n-core", "models", "--json", cwd=work, env=env).stdout)
    assert {m["name"] for m in models["models"]} >= {"builtin:photo", "builtin:quickstart"}


def test_run_quickstart_by_name_and_denoise_a_photo(installed):
    bin_dir, env, work = installed
    r = _sh(bin_dir / "n2n-core", "run", "quickstart", "--set", "train.steps=3",
            "--set", "data.val=builtin:photos-holdout", cwd=work, env=env)  # fmt: skip
    run = work / "results" / "00000-quickstart"
    assert (run / "snapshots" / "final.safetensors").is_file(), r.stdout
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(work / "noisy.png")
    r = _sh(bin_dir / "n2n-core", "infer", "--image", "noisy.png", "--out", "clean.png",
            cwd=work, env=env)  # fmt: skip
    assert "builtin:photo" in r.stderr
    assert Image.open(work / "clean.png").size == (64, 48)


def test_the_tui_starts_headless_and_lists_runs_and_builtin_presets(installed):
    bin_dir, env, work = installed
    (work / "results").mkdir(exist_ok=True)
    script = textwrap.dedent(
        """
        import asyncio, json
        from n2n_tui.app import N2NApp

        async def main():
            app = N2NApp(device_probe=lambda: {"devices": ["cpu"], "cpu_cores": 2})
            async with app.run_test(size=(120, 40)) as pilot:
                while not app.rows_loaded:
                    await pilot.pause(0.05)
                await pilot.press("p")
                while not getattr(app.screen, "entries", None):
                    await pilot.pause(0.05)
                print(json.dumps({
                    "screen": type(app.screen).__name__,
                    "presets": {e.path.stem: e.source for e in app.screen.entries},
                }))

        asyncio.run(asyncio.wait_for(main(), 120))
        """
    )
    r = _sh(bin_dir / "python", "-c", script, cwd=work, env=env)
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["screen"] == "PresetsScreen"
    assert seen["presets"]["quickstart"] == "builtin" and seen["presets"]["photo"] == "builtin"
