"""Operating-system mechanisms: what proves a process is ours, locks, signal to
stop, children that die with their launcher, how OpenMP threads wait.

Knows nothing of presets or training; run folders appear only as paths.
Imports ``errors`` and ``files``.
"""
