"""The base of every screen: failures of its workers become an error dialog, never a traceback."""

from __future__ import annotations

from textual import events, on
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from ..widgets.common import ErrorModal


def worker_failed(screen_or_app, event: Worker.StateChanged) -> None:
    if event.state != WorkerState.ERROR:
        return
    err = event.worker.error
    what = event.worker.name or "background task"
    message = f"{type(err).__name__}: {err}" if err else "unknown error"
    screen_or_app.app.push_screen(ErrorModal(f"{what} failed", message))


class BaseScreen(Screen):
    # Below this many rows the screen gets the class -short, below this many columns
    # -narrow (the stylesheet tightens it: panes collapse, side by side becomes one
    # under the other).
    SHORT_ROWS = 32
    NARROW_COLS = 110

    @on(events.Resize)
    def _fit_terminal(self) -> None:
        self.set_class(self.size.height < self.SHORT_ROWS, "-short")
        self.set_class(self.size.width < self.NARROW_COLS, "-narrow")
        # At 80 columns the keys fit only without the footer's spacing and palette hint.
        for footer in self.query(Footer):
            footer.compact = self.size.width < 110
            footer.show_command_palette = self.size.width >= 110

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        worker_failed(self, event)
