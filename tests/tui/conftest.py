"""Shared fixtures for the TUI tests: recorded run folders, presets, a frozen clock."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tui_helpers import CLOCK, FIXTURES, T0  # noqa: F401

from n2n_tui.app import N2NApp


@pytest.fixture
def results(tmp_path: Path) -> Path:
    dest = tmp_path / "results"
    shutil.copytree(FIXTURES / "runs", dest)
    for p in dest.rglob("*"):  # file ages shown on screen are relative to CLOCK
        os.utime(p, (T0 + 7200, T0 + 7200))
    return dest


@pytest.fixture
def presets(tmp_path: Path) -> Path:
    dest = tmp_path / "presets"
    shutil.copytree(FIXTURES / "presets", dest)
    return dest


@pytest.fixture(autouse=True)
def builtin_presets(monkeypatch) -> Path:
    """The built-in presets the TUI tests see: one fixture file, so that the screens'
    pictures do not change whenever the package's presets do."""
    from n2n_core.config import catalogue

    folder = FIXTURES / "builtin-presets"
    monkeypatch.setattr(catalogue, "builtin_dir", lambda: folder)
    return folder


@pytest.fixture(autouse=True)
def no_builtin_models(monkeypatch, tmp_path_factory) -> None:
    """No built-in models unless a test asks for them (``shipped_models``): the screens'
    pictures stay the same when the shipped models are remade."""
    import n2n_core.pretrained as pretrained

    empty = tmp_path_factory.mktemp("no-models")
    monkeypatch.setattr(pretrained, "models_dir", lambda: empty)


@pytest.fixture
def shipped_models(monkeypatch) -> Path:
    """The built-in models this install ships."""
    import n2n_core.pretrained as pretrained

    folder = Path(pretrained.__file__).resolve().parent
    monkeypatch.setattr(pretrained, "models_dir", lambda: folder)
    return folder


@pytest.fixture
def make_app(results: Path, presets: Path, monkeypatch) -> Callable[..., N2NApp]:
    # Relative paths, as a user types them, so that snapshots do not contain tmp dirs.
    monkeypatch.chdir(results.parent)

    def make(**kwargs) -> N2NApp:
        kwargs.setdefault("results_dir", Path("results"))
        kwargs.setdefault("presets_dir", Path("presets"))
        kwargs.setdefault("clock", lambda: CLOCK)
        kwargs.setdefault("poll_interval", 0.1)
        # Launch asks `n2n-core devices`; tests answer for it (a subprocess importing torch each time is slow).
        kwargs.setdefault("device_probe", lambda: {"devices": ["cuda", "cpu"], "cpu_cores": 16})
        return N2NApp(**kwargs)

    return make


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run ``async def`` tests in a fresh event loop (no asyncio plugin needed)."""
    func = pyfuncitem.obj
    if not asyncio.iscoroutinefunction(func):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(func(**kwargs))
    return True
