"""The dashboard's validation pictures: the newest noisy | denoised | clean strip, and its history."""

from __future__ import annotations

import time
from pathlib import Path

from n2n_core.runs.layout import RunPaths

from ...images import sample_steps
from .picture import Picture, load_picture

RESCAN_S = 1.0


class SamplePanel(Picture):
    """Follows the newest sample strip of a run; ``step_through`` pins an older one.

    Hidden while the run has no samples, so runs without validation look as before.
    """

    DEFAULT_CSS = """
    SamplePanel.-empty { display: none; }
    """

    def __init__(self, run_dir: str | Path, **kwargs) -> None:
        super().__init__("samples", **kwargs)
        self.samples_dir = RunPaths(run_dir).samples
        self.steps: list[int] = []
        self.paths: dict[int, list[Path]] = {}
        self.pinned: int | None = None  # None: follow the newest
        self.upto: int | None = None
        self.shown: tuple[Path, str] | None = None
        self._scanned = 0.0

    def on_mount(self) -> None:
        self.add_class("-empty")
        super().on_mount()

    @property
    def has_samples(self) -> bool:
        return not self.has_class("-empty")

    def poll(self, upto_step: int | None = None, force: bool = False) -> None:
        """Rescan (at most once a second) and show; ``upto_step`` hides later ones (replay)."""
        now = time.monotonic()
        if force or now - self._scanned >= RESCAN_S or upto_step != self.upto:
            if force or now - self._scanned >= RESCAN_S:
                self.paths = sample_steps(self.samples_dir)
                self._scanned = now
            self.upto = upto_step
            self.steps = [s for s in self.paths if upto_step is None or s <= upto_step]
            self._draw()

    def step_through(self, delta: int) -> None:
        """Older (-1) or newer (+1) strip; stepping past the newest follows again."""
        if not self.steps:
            return
        i = self.steps.index(self.current) if self.current in self.steps else len(self.steps) - 1
        i = min(max(i + delta, 0), len(self.steps) - 1)
        self.pinned = None if i == len(self.steps) - 1 else self.steps[i]
        self._draw()

    @property
    def current(self) -> int | None:
        if not self.steps:
            return None
        if self.pinned is not None and self.pinned in self.steps:
            return self.pinned
        return self.steps[-1]

    def _draw(self) -> None:
        step = self.current
        if self.has_samples != (step is not None):
            # A class, not an inline style, so that the screen's CSS can still hide it.
            self.set_class(step is None, "-empty")
            self.screen.set_class(step is not None, "-samples")
            self.screen.refresh_bindings()  # the screen offers keys only while there are samples
        if step is None:
            return
        path = self.paths[step][0]
        i = self.steps.index(step) + 1
        follow = "" if self.pinned is None else " · pinned"
        label = (
            f"samples · step {step:,} ({i}/{len(self.steps)}{follow}) · "
            "noisy | denoised | clean · [ ] older/newer"
        )
        key = (path, label)
        if key == self.shown:
            return
        self.shown = key
        try:
            image, text = load_picture(path), path.name
        except (OSError, ValueError) as e:
            image, text = None, f"cannot read {path.name}: {e}"
        self.show(image, label, text)
