"""The house DataTable: row cursor, zebra stripes, and in-place row updates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable

ROWS_AT_ONCE = 500


class RunsTable(DataTable):
    """A DataTable whose rows are replaced in place by key (no flicker, cursor kept).

    One column (``flex``) takes whatever width the terminal leaves, so a narrow
    terminal keeps the columns after it in view and a wide one is used.
    """

    DEFAULT_CSS = """
    RunsTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("home", "first_row", "First", show=False),
        Binding("end", "last_row", "Last", show=False),
    ]

    def __init__(self, flex: str | None = None, min_flex: int = 10, **kwargs: Any):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        # key -> (the caller's cells, as shown): the caller's tuple unchanged is skipped unread
        self._cells: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        self.flex, self.min_flex = flex, min_flex
        self._pending: list[tuple[str, tuple[Any, ...]]] = []

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def on_resize(self, event: events.Resize) -> None:
        self.fit_columns()

    def fit_columns(self) -> None:
        """Give the flex column the width the others leave (call after adding columns)."""
        col = self.columns.get(self.flex) if self.flex else None  # type: ignore[call-overload]
        if col is None or not self.size.width:
            return
        others = sum(c.get_render_width(self) for c in self.columns.values() if c is not col)
        # One cell of slack for the vertical scrollbar's edge.
        width = max(self.min_flex, self.size.width - others - 2 * self.cell_padding - 1)
        if width != col.width or col.auto_width:
            col.width, col.auto_width = width, False
            self._require_update_dimensions = True
            self._clear_caches()
            self.refresh()

    def sync(self, rows: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """Show exactly ``rows`` (key, cells) in this order, touching only what changed.

        A ``str`` cell is shown as plain text: DataTable would parse it as rich markup,
        and cells hold data from files (a run folder named ``00031-[bold red]x``).
        """
        self._pending = []  # rows still to add from an earlier sync: this one decides
        keys = [k for k, _ in rows]
        shown = list(self._cells)
        if keys[: len(shown)] != shown:
            current = self.current_key()
            self.clear()
            self._cells = {}
            self._add(rows)
            if current in self._cells:
                self.move_cursor(row=keys.index(current), animate=False)
            return
        columns = list(self.columns)
        cells_of = self._cells
        for key, cells in rows[: len(shown)]:
            old = cells_of[key]
            if old[0] is cells:  # the caller's same tuple: nothing changed
                continue
            new = tuple(_plain(c) for c in cells)
            if old[1] == new:
                cells_of[key] = (cells, new)
                continue
            for i, (a, b) in enumerate(zip(old[1], new, strict=False)):
                if a != b:
                    self.update_cell(key, columns[i], b)
            cells_of[key] = (cells, new)
        self._add(rows[len(shown) :])  # rows after those shown (a long list still loading)

    def _add(self, rows: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        # A screenful first, the rest after each refresh: 10,000 rows show at once and fill
        # in below within a second, instead of the screen waiting for all of them.
        for key, cells in rows[:ROWS_AT_ONCE]:
            new = tuple(_plain(c) for c in cells)
            self.add_row(*new, key=key)
            self._cells[key] = (cells, new)
        self._pending = list(rows[ROWS_AT_ONCE:])
        if self._pending:
            self.call_after_refresh(self._add_pending)

    def _add_pending(self) -> None:
        rows, self._pending = self._pending, []
        if rows:
            self._add(rows)

    @property
    def filling(self) -> bool:
        """Whether rows of the last sync are still being added."""
        return bool(self._pending)

    def reset_columns(self) -> None:
        """Drop every column and row (the caller adds the new columns, then syncs rows)."""
        self.clear(columns=True)
        self._cells = {}
        self._pending = []

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
