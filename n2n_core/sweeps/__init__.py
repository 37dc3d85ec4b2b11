"""Sweeps: a preset times a grid becomes points, each an ordinary run folder.

``store`` is ``sweep.json`` and its view; ``local`` and ``slurm`` are the two
backends, which never import each other. May import ``training`` (a point
is prepared as a run) and everything below.
"""
