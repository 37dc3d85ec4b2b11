"""Run folders: layout and numbering, the ``metrics.jsonl`` records, ``run.json``,
what records add up to (state, summary), following a growing file, filters,
curves, CSV/plot/Markdown export, TensorBoard, and stopping a run from outside
(only through the process identity the run recorded).

The contract every reader (CLI, TUI, replay) and the one writer (rank 0)
share. Imports ``process``, ``config``, ``data``, ``files``, ``errors``;
never torch at import time.
"""
