"""Reading a preset file: bounded YAML (size, nesting, alias expansion, no duplicate
keys), so a hostile file cannot take memory, time or the terminal.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import yaml

from n2n_core.config.schema import _short
from n2n_core.errors import UserError
from n2n_core.files.checks import read_bounded

# A preset is a few dozen keys; these bounds leave room for long descriptions and
# comments while keeping a hostile file (a "billion laughs" alias bomb, /dev/zero,
# a 10 000-deep nesting) from taking memory, time or the terminal.
MAX_PRESET_BYTES = 1 << 20


MAX_PRESET_NODES = 10_000  # values after alias expansion


MAX_PRESET_DEPTH = 32


class _PresetTooBig(Exception):
    """The composed YAML exceeds a budget (raised inside the loader, reported by the caller)."""


class PresetLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that bounds nesting and alias expansion and refuses duplicate keys.

    PyYAML builds an alias as a reference to the anchored node, so expansion costs
    nothing until someone walks the data (pydantic, an error message, a dump); the
    size counted here is that walk's, with every alias expanded.
    """

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        self._depth += 1
        self._nodes += 1
        try:
            if self._nodes > MAX_PRESET_NODES:  # stop early; aliases are counted afterwards
                raise _PresetTooBig(f"more than {MAX_PRESET_NODES} values")
            if self._depth > MAX_PRESET_DEPTH:
                mark = self.peek_event().start_mark
                raise _PresetTooBig(
                    f"nested deeper than {MAX_PRESET_DEPTH} levels at line {mark.line + 1}"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                if (
                    not isinstance(key_node, yaml.ScalarNode)
                    or key_node.tag == "tag:yaml.org,2002:merge"
                ):
                    continue
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {_short(key_node.value)}",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in ``root`` with every alias expanded; over budget or cyclic is ``_PresetTooBig``."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def walk(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _PresetTooBig("an alias refers to its own anchor (a cycle)")
        active.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1
        for child in children:
            total += walk(child)
            if total > MAX_PRESET_NODES:
                raise _PresetTooBig(
                    f"more than {MAX_PRESET_NODES} values once aliases are expanded "
                    "(an alias bomb?)"
                )
        active.discard(key)
        sizes[key] = total
        return total

    return walk(root)


# Quoted scalars and comments, whose brackets are text, not YAML structure.
_NOT_STRUCTURE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\"|#[^\n]*")


def _flow_depth(text: str) -> int:
    """How deep ``[``/``{`` nest outside quoted scalars and comments (closers not clamped).

    Checked before PyYAML sees the text: its scanner looks ahead through every
    open bracket of a line at a cost that grows with their square (about a second
    for a 1 KB line of ``[``), before the loader's own depth check can stop it.
    """
    brackets = _NOT_BRACKET.sub("", _NOT_STRUCTURE.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _load_yaml(text: str, source: str) -> Any:
    """``yaml.load`` with :class:`PresetLoader`; a budget exceeded is a UserError naming ``source``."""
    if _flow_depth(text) > MAX_PRESET_DEPTH:
        raise UserError(f"{source}: YAML refused: nested deeper than {MAX_PRESET_DEPTH} levels")
    try:
        return yaml.load(text, Loader=PresetLoader)  # noqa: S506 - a SafeLoader subclass
    except _PresetTooBig as e:
        raise UserError(f"{source}: YAML refused: {e}") from None
    except RecursionError:
        raise UserError(f"{source}: YAML refused: nested too deeply") from None


def parse_preset_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text`` (bounded, no duplicate keys); errors name ``source``."""
    try:
        return _load_yaml(text, source)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise UserError(f"{source}: YAML syntax error{where}: {problem}") from None


def read_preset_data(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    raw = read_bounded(p, "preset file", "a preset .yaml file", MAX_PRESET_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{p}: cannot read preset (not UTF-8 text)") from None
    data = parse_preset_yaml(text, str(p))
    if data is None or not isinstance(data, dict):
        kind = "empty file" if data is None else f"a {type(data).__name__}"
        raise UserError(f"{p}: expected a mapping of preset keys at top level, got {kind}")
    return data
