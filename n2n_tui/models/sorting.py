"""Sorting a table by any of its columns: click a header (or press ``o``), again to reverse.

Rows are sorted by their values, not by the text shown (``31.42`` above ``9.80``,
``12k`` steps after ``900``); a missing value (``None``) sorts last either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class SortOrder:
    column: str | None = None  # None: the table's natural order
    reverse: bool = False

    def toggle(self, column: str) -> None:
        """A header was chosen: sort by it, or reverse when it already is the sort column."""
        if self.column == column:
            self.reverse = not self.reverse
        else:
            self.column, self.reverse = column, False

    def next_column(self, columns: Sequence[str]) -> None:
        """``o``: the next column to the right (after the last, back to the natural order)."""
        if self.column not in columns:
            self.column, self.reverse = (columns[0] if columns else None), False
            return
        i = list(columns).index(self.column) + 1
        self.column, self.reverse = (columns[i] if i < len(columns) else None), False

    def apply(self, rows: list[T], value: Callable[[T, str], Any]) -> list[T]:
        if self.column is None:
            return rows
        col = self.column
        present = [r for r in rows if value(r, col) is not None]
        missing = [r for r in rows if value(r, col) is None]
        present.sort(key=lambda r: _comparable(value(r, col)), reverse=self.reverse)
        return present + missing

    def label(self, column: str, text: str) -> str:
        """A header's text with an arrow on the sort column."""
        if column != self.column:
            return text
        return f"{text} {'▼' if self.reverse else '▲'}"


def _comparable(v: Any) -> tuple[int, Any]:
    # Numbers before text, so a column mixing both (a grid of values) still sorts.
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, int | float):
        return (0, v)
    return (1, str(v).lower())
