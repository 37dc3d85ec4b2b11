"""The house DataTable: row cursor, zebra stripes, in-place row updates, and columns that
fit the terminal: each screen states which columns drop first when it is narrow, which
shrink, and which take the room a wide terminal leaves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable


@dataclass(frozen=True)
class Col:
    """One column. ``width``: its width with room to spare; ``min``: the narrowest it may
    get before columns are dropped (default ``width``); ``drop``: 0 never dropped, else the
    order in which a narrow terminal drops it (1 first; equal numbers drop together);
    ``grow``: how wide it may grow into a wide terminal's spare room (0 no, -1 unlimited),
    columns growing in the order they are listed."""

    key: str
    label: str | Text
    width: int
    min: int | None = None
    drop: int = 0
    grow: int = 0

    @property
    def narrowest(self) -> int:
        return self.width if self.min is None else min(self.min, self.width)


def fit(cols: Sequence[Col], room: int, pad: int) -> tuple[list[int], dict[int, int]]:
    """Which columns (indexes) are shown in ``room`` cells and how wide each is: columns
    drop in their stated order until the rest fit at their narrowest; the shown ones
    shrink from their width as far as needed (the last shrinkable first) and grow into
    what is left."""
    shown = list(range(len(cols)))

    def need(idx: list[int]) -> int:
        return sum(cols[i].narrowest + pad for i in idx)

    for drop in sorted({c.drop for c in cols if c.drop}):
        if need(shown) <= room:
            break
        shown = [i for i in shown if cols[i].drop != drop]
    widths = {i: cols[i].width for i in shown}
    over = sum(widths[i] + pad for i in shown) - room
    for i in reversed(shown):  # the later (less telling) columns give way first
        if over <= 0:
            break
        cut = min(over, widths[i] - cols[i].narrowest)
        widths[i] -= cut
        over -= cut
    spare = -over
    for i in shown:
        if spare <= 0:
            break
        grow = cols[i].grow
        if grow:
            add = spare if grow < 0 else min(spare, max(grow - widths[i], 0))
            widths[i] += add
            spare -= add
    return shown, widths


ROWS_AT_ONCE = 500


class RunsTable(DataTable):
    """A DataTable whose rows are replaced in place by key (no flicker, cursor kept).

    Columns are set with :meth:`set_columns`; rows given to :meth:`sync` carry a cell
    for every column, and the table shows those of the columns that fit.
    """

    DEFAULT_CSS = """
    RunsTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("home", "first_row", "First", show=False),
        Binding("end", "last_row", "Last", show=False),
    ]

    def __init__(self, **kwargs: Any):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._cells: dict[str, tuple[Any, ...]] = {}  # the shown cells of each row
        # every column's cells of each row: (the caller's tuple, as shown); the caller's
        # same tuple again is skipped unread (a change in one of 10,000 runs is one row)
        self._full: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        self._pending: list[str] = []  # rows still to add (a long list fills in)
        self._specs: list[Col] = []
        self._shown: list[int] = []
        self._widths: dict[int, int] = {}

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    # -- columns ---------------------------------------------------------------------

    def set_columns(self, cols: Sequence[Col]) -> None:
        """Replace the columns (rows kept: they are shown again under the new ones)."""
        self._specs = list(cols)
        self._shown, self._widths = [], {}
        self._refit(force=True)

    def set_label(self, key: str, label: str | Text, width: int | None = None) -> None:
        """A column's header (and width) changed in place, e.g. a level named in it."""
        i = next((n for n, c in enumerate(self._specs) if c.key == key), None)
        if i is None:
            return
        old = self._specs[i]
        new = replace(old, label=label, width=old.width if width is None else width)
        if new == old:
            return
        self._specs[i] = new
        if width is not None and width != old.width:
            self._refit(force=True)
        elif i in self._shown:
            self.columns[key].label = Text(label) if isinstance(label, str) else label  # type: ignore[index]
            self._clear_caches()
            self.refresh()

    @property
    def shown_keys(self) -> list[str]:
        return [self._specs[i].key for i in self._shown]

    def on_resize(self, event: events.Resize) -> None:
        self._refit()

    def _room(self) -> int:
        # One cell of slack for the vertical scrollbar's edge.
        return self.size.width - 1

    def _refit(self, force: bool = False) -> None:
        if self.size.width:
            shown, widths = fit(self._specs, self._room(), 2 * self.cell_padding)
        else:  # not laid out yet: everything at its width, fitted on the first resize
            shown, widths = (
                list(range(len(self._specs))),
                {i: c.width for i, c in enumerate(self._specs)},
            )
        if not force and shown == self._shown:
            if widths != self._widths:
                self._widths = widths
                for i in shown:
                    col = self.columns[self._specs[i].key]  # type: ignore[index]
                    col.width, col.auto_width = widths[i], False
                self._require_update_dimensions = True
                self._clear_caches()
                self.refresh()
            return
        self._shown, self._widths = shown, widths
        current = self.current_key()
        self.clear(columns=True)
        for i in shown:
            c = self._specs[i]
            self.add_column(c.label, width=widths[i], key=c.key)
        self._cells = {}
        self._add(list(self._full))
        if current in self._cells:
            self.move_cursor(row=list(self._cells).index(current), animate=False)

    def _pick(self, cells: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(cells[i] if i < len(cells) else "" for i in self._shown)

    # -- rows ------------------------------------------------------------------------

    def sync(self, rows: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """Show exactly ``rows`` (key, a cell per column) in this order, touching only
        what changed; a row whose cells are the same tuple object as last time is not
        even compared.

        A ``str`` cell is shown as plain text: DataTable would parse it as rich markup,
        and cells hold data from files (a run folder named ``00031-[bold red]x``).
        """
        self._pending = []  # rows still to add from an earlier sync: this one decides
        old_full = self._full
        full = {}
        for k, cells in rows:
            prev = old_full.get(k)
            full[k] = prev if prev is not None and prev[0] is cells else (cells, _plains(cells))
        self._full = full
        keys = list(full)
        shown = list(self._cells)
        if keys[: len(shown)] != shown:
            current = self.current_key()
            self.clear()
            self._cells = {}
            self._add(keys)
            if current in self._cells:
                self.move_cursor(row=keys.index(current), animate=False)
            return
        columns = list(self.columns)
        for key in shown:
            entry = full[key]
            if old_full.get(key) is entry:
                continue
            cells = self._pick(entry[1])
            old = self._cells.get(key)
            if old == cells:
                continue
            for i, (a, b) in enumerate(zip(old or (), cells, strict=False)):
                if a != b:
                    self.update_cell(key, columns[i], b)
            self._cells[key] = cells
        self._add(keys[len(shown) :])  # rows after those shown (a long list still loading)

    def _add(self, keys: list[str]) -> None:
        # A screenful first, the rest after each refresh: 10,000 rows show at once and fill
        # in below within a second, instead of the screen waiting for all of them.
        for key in keys[:ROWS_AT_ONCE]:
            cells = self._pick(self._full[key][1])
            self.add_row(*cells, key=key)
            self._cells[key] = cells
        self._pending = keys[ROWS_AT_ONCE:]
        if self._pending:
            self.call_after_refresh(self._add_pending)

    def _add_pending(self) -> None:
        keys, self._pending = self._pending, []
        self._add([k for k in keys if k in self._full and k not in self._cells])

    @property
    def filling(self) -> bool:
        """Whether rows of the last sync are still being added."""
        return bool(self._pending)

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


def _plains(cells: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_plain(c) for c in cells)
