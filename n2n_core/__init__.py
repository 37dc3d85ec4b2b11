"""n2n's engine: Noise2Noise training, evaluation and the run folders, headless.

The packages and their layers are described in docs/ARCHITECTURE.md; start with
``training/loop.py`` (the loop, top to bottom against the paper) and
``cli/main.py`` (the table of commands). Never imports textual.
"""
