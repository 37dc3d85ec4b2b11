"""A run's processes: the launcher (one process or torchrun), the rank entry,
torchrun's agent, the training loop and what rank 0 writes.

The loop reads top to bottom against the paper. Imports everything below
(``tasks``, ``engine``, ``evaluation``, ``runs``, ``process``); only
``sweeps``, ``bench`` and ``cli`` import it.
"""
