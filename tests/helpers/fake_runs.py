"""The benchmarks' run-folder generator, shared with the tests that need many runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _fake_runs import LiveWriters, finished_runs  # noqa: E402

__all__ = ["LiveWriters", "finished_runs"]
