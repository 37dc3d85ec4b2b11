"""The house DataTable: row cursor, zebra stripes, and in-place row updates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable


class RunsTable(DataTable):
    """A DataTable whose rows are replaced in place by key (no flicker, cursor kept)."""

    DEFAULT_CSS = """
    RunsTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._cells: dict[str, tuple[Any, ...]] = {}

    def sync(self, rows: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """Show exactly ``rows`` (key, cells) in this order, touching only what changed.

        A ``str`` cell is shown as plain text: DataTable would parse it as rich markup,
        and cells hold data from files (a run folder named ``00031-[bold red]x``).
        """
        rows = [(k, tuple(_plain(c) for c in cells)) for k, cells in rows]
        keys = [k for k, _ in rows]
        if keys != list(self._cells):
            current = self.current_key()
            self.clear()
            self._cells = {}
            for key, cells in rows:
                self.add_row(*cells, key=key)
                self._cells[key] = cells
            if current in self._cells:
                self.move_cursor(row=keys.index(current), animate=False)
            return
        columns = list(self.columns)
        for key, cells in rows:
            old = self._cells.get(key)
            if old == cells:
                continue
            for i, (a, b) in enumerate(zip(old or (), cells, strict=False)):
                if a != b:
                    self.update_cell(key, columns[i], b)
            self._cells[key] = cells

    def reset_columns(self) -> None:
        """Drop every column and row (the caller adds the new columns, then syncs rows)."""
        self.clear(columns=True)
        self._cells = {}

    def current_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - cursor outside the table
            return None
        return key.value


def _plain(cell: Any) -> Any:
    return Text(cell, end="") if isinstance(cell, str) else cell
