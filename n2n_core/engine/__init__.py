"""The pieces a training step is made of: network, noise, losses, lr schedule,
device and precision, ``torch.compile``, snapshots, rank-0 console, system metrics.

Each is a small module with explicit inputs; none knows about run folders
beyond the records it emits. May import ``config``, ``process``, ``runs``,
``data``, ``files``, ``errors``. The loop that puts them together lives in
``training``.
"""
