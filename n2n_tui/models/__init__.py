"""The TUI's models: the state and data the screens show, and the processes they call.

What a run folder holds as it grows, the run and sweep lists, a replay, the
snapshots of a run, the preset files and the preset editor's fields, table
sort orders, alerts, and starting or calling ``n2n-core`` processes. No
drawing: ``screens`` and ``widgets`` import these modules, never the reverse.

May import: the standard library, pydantic and yaml, each other, and
n2n_core's torch-free packages (``runs``, ``config``, ``process``, ``files``,
``formatting``, ``errors``, and ``sweeps.store`` for ``sweep.json``). Never
imports textual (widgets, screens or the app), n2n_core.training or torch.
"""
