"""What a training step feeds the network and how a run is validated, per task:
synthetic-noise images, the user's own noisy data, MRI k-space.

``registry`` picks the task for a preset (no task imports it). Imports
``engine``, ``data``, ``evaluation.protocol``, ``config``.
"""
