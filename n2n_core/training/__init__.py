"""A run's processes: the launcher (one process or torchrun), the rank entry,
the training loop, stopping a run from outside.

The loop reads top to bottom against the paper. Imports everything below
(``tasks``, ``engine``, ``evaluation``, ``runs``, ``process``); only
``sweeps``, ``bench`` and ``cli`` import it.
"""
