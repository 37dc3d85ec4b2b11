"""Snapshots of a run: step and PSNR; validate on a data set, freeze to ONNX, infer an image."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from .. import formatting as fmt
from ..procs import run_core
from ..snapshots import (
    Snapshot,
    append_log,
    colour_text,
    denoise_each,
    infer_out,
    list_snapshots,
    validation_line,
)
from ..widgets.common import PathModal, RunsTable
from .base import BaseScreen
from .pictures import PicturesScreen


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class SnapshotsScreen(BaseScreen):
    """The weights a run wrote, and what can be done with them."""

    HELP = (
        "Periodic and final snapshots with the validation PSNR at their step. "
        "Validate runs `n2n-core validate` on a data set folder and appends the "
        "result to the run's log.txt; freeze writes an ONNX model beside the "
        "snapshot; infer denoises an image (or a folder) into the run's samples/ "
        "and shows it beside the input — with every marked snapshot (space) when "
        "some are marked, so two snapshots are compared crop for crop."
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("v", "validate", "Validate"),
        Binding("f", "freeze", "Freeze ONNX"),
        Binding("i", "infer", "Infer image"),
        Binding("space", "mark", "Mark"),
        Binding("g", "reload", "Reload", show=False),
    ]

    def __init__(self, run_dir: str | Path):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.snaps: list[Snapshot] = []
        self.last_dataset = _default_dataset()
        self.last_image = ""
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(f"snapshots of {self.run_dir}"), id="snap-title", classes="info-line")
        yield RunsTable(id="snap-table")
        yield Static("", id="snap-result", classes="result-box")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "snapshots"
        self.sub_title = self.run_dir.name
        table = self.query_one(RunsTable)
        for label, width in (
            ("Snapshot", 34),
            ("Step", 10),
            ("PSNR", 7),
            ("Size", 9),
            ("Written", 10),
        ):
            table.add_column(label, width=width, key=label)
        self.query_one("#snap-result", Static).display = False
        self.reload()
        table.focus()

    @work(
        thread=True, exclusive=True, group="snap-list", exit_on_error=False, name="list snapshots"
    )
    def reload(self) -> None:
        snaps = list_snapshots(self.run_dir)
        self.app.call_from_thread(self._show, snaps)

    def _show(self, snaps: list[Snapshot]) -> None:
        self.snaps = snaps
        now = self.app.clock()
        rows = [
            (
                s.name,
                (
                    f"● {s.name}" if s.name in self.marked else s.name,
                    f"{s.step:,}" if s.step is not None else fmt.DASH,
                    fmt.psnr(s.psnr),
                    _size(s.size),
                    fmt.age(s.mtime, now),
                ),
            )
            for s in snaps
        ]
        self.query_one(RunsTable).sync(rows)
        title = self.query_one("#snap-title", Static)
        if not snaps:
            title.update(
                Text(
                    f"{self.run_dir}: no snapshots yet "
                    "(they are written every snapshot_every steps and at the end)"
                )
            )
        else:
            title.update(
                Text(
                    f"{len(snaps)} snapshot{'s' if len(snaps) > 1 else ''} "
                    f"in {self.run_dir / 'snapshots'}"
                )
            )

    def selected(self) -> Snapshot | None:
        key = self.query_one(RunsTable).current_key()
        return next((s for s in self.snaps if s.name == key), None)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_mark(self) -> None:
        snap = self.selected()
        if snap:
            self.marked.symmetric_difference_update({snap.name})
            self._show(self.snaps)

    def action_reload(self) -> None:
        self.reload()

    def _result(self, text: Text | str, error: bool = False) -> None:
        box = self.query_one("#snap-result", Static)
        box.display = True
        box.set_class(error, "-error")
        box.update(Text(text) if isinstance(text, str) else text)

    # -- validate ----------------------------------------------------------------

    def action_validate(self) -> None:
        snap = self.selected()
        if not snap:
            return

        def chosen(path: Path | None) -> None:
            if path:
                self.last_dataset = str(path)
                self._result(f"validating {snap.name} on {path} …")
                self.validate(snap.path, path)

        self.app.push_screen(
            PathModal(
                f"Validate {snap.name}",
                "Data set folder (images); the result is appended to the run's log.txt.",
                self.last_dataset,
                want_dir=True,
            ),
            chosen,
        )

    @work(thread=True, exclusive=True, group="snap-action", exit_on_error=False, name="validate")
    def validate(self, snapshot: Path, dataset: Path) -> None:
        res = run_core(
            ["validate", "--snapshot", str(snapshot), "--dataset-dir", str(dataset), "--json"]
        )
        data = res.json() if res.ok else None
        if not res.ok or data is None:
            msg = res.error_line() if not res.ok else "n2n-core validate printed no JSON result"
            self.app.call_from_thread(self._result, f"validate failed: {msg}", True)
            return
        line = validation_line(snapshot, dataset, data, self.app.clock())
        try:
            append_log(self.run_dir, line)
            where = f"appended to {self.run_dir / 'log.txt'}"
        except OSError as e:
            where = f"could not append to log.txt: {e.strerror}"
        t = Text()
        t.append(f"PSNR {fmt.psnr(data.get('psnr'))} dB", style="bold")
        t.append(colour_text(data))
        extras = ", ".join(f"{k} {data[k]}" for k in ("images", "noise", "seed") if k in data)
        t.append(f"  {snapshot.name} on {dataset}  ({extras})\n{where}")
        self.app.call_from_thread(self._result, t)

    # -- freeze ------------------------------------------------------------------

    def action_freeze(self) -> None:
        snap = self.selected()
        if snap:
            out = snap.path.with_suffix(".onnx")
            self._result(f"freezing {snap.name} → {out} …")
            self.freeze(snap.path, out)

    @work(thread=True, exclusive=True, group="snap-action", exit_on_error=False, name="freeze")
    def freeze(self, snapshot: Path, out: Path) -> None:
        res = run_core(["freeze", "--snapshot", str(snapshot), "--out", str(out)])
        if not res.ok:
            self.app.call_from_thread(self._result, f"freeze failed: {res.error_line()}", True)
            return
        self.app.call_from_thread(
            self._result, Text.assemble(("ONNX model written: ", "bold"), str(out))
        )

    # -- infer -------------------------------------------------------------------

    def action_infer(self) -> None:
        chosen_snaps = [s for s in self.snaps if s.name in self.marked]
        if not chosen_snaps:
            snap = self.selected()
            chosen_snaps = [snap] if snap else []
        if not chosen_snaps:
            return
        names = ", ".join(s.name for s in chosen_snaps)

        def chosen(path: Path | None) -> None:
            if not path:
                return
            self.last_image = str(path)
            jobs = [(s.path, infer_out(self.run_dir, path, s.path)) for s in chosen_snaps]
            self._result(f"denoising {path} with {names} …")
            self.infer(path, jobs)

        self.app.push_screen(
            PathModal(
                f"Infer with {names}",
                "Image (or folder of images) to denoise; output goes to the run's samples/.",
                self.last_image,
            ),
            chosen,
        )

    @work(thread=True, exclusive=True, group="snap-action", exit_on_error=False, name="infer")
    def infer(self, image: Path, jobs: list[tuple[Path, Path]]) -> None:
        error = denoise_each(image, jobs)
        if error:
            self.app.call_from_thread(self._result, f"infer failed: {error}", True)
            return
        outs = ", ".join(str(out) for _, out in jobs)
        self.app.call_from_thread(
            self._result, Text.assemble(("denoised image written: ", "bold"), outs)
        )
        if not image.is_dir():
            items = [(f"input · {image.name}", image)]
            items += [(f"denoised · {snap.name}", out) for snap, out in jobs]
            self.app.call_from_thread(
                self.app.push_screen,
                PicturesScreen(f"{image} denoised by {self.run_dir.name}", items),
            )


def _default_dataset() -> str:
    return "datasets/" if Path("datasets").is_dir() else ""
