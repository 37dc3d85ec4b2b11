"""Presets: the pydantic schema, the bounded YAML loader, ``--set`` overrides and diffs.

The lists of devices, precisions, noise types and data prefixes are declared
here once; the CLI's choices and the TUI's options derive from them. Imports
only ``errors`` and ``files``.
"""
