"""The installed version of n2n, as ``n2n-core --version`` and ``n2n-tui --version`` say it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The version pyproject.toml gave the installed distribution (``unknown`` when not installed)."""
    try:
        return version("n2n")
    except PackageNotFoundError:
        return "unknown"
