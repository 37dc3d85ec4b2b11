"""Snapshots of a run: step and PSNR; validate on a data set, freeze to ONNX, infer an image.
The built-in models are listed below them: validate or denoise with one beside the run's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from n2n_core import formatting as fmt
from n2n_core.config.loader import read_preset_data
from n2n_core.errors import UserError
from n2n_core.runs.info import effective_status, read_run_info
from n2n_core.runs.layout import RunPaths
from n2n_core.runs.records import EvalRecord
from n2n_core.runs.writer import MetricsWriter

from ..models.procs import run_core
from ..models.snapshots import (
    Snapshot,
    append_log,
    builtin_models,
    colour_text,
    denoise_each,
    infer_out,
    list_snapshots,
    validation_line,
)
from ..widgets.common import Col, ConfirmModal, PathModal, RunsTable
from .base import BaseScreen
from .pictures import PicturesScreen

AGES_S = 5.0  # how often the "Written" ages are redrawn


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _validated(e: EvalRecord | None) -> str:
    if e is None or e.psnr is None:
        return fmt.DASH
    inp = f" (in {fmt.psnr(e.input_psnr)})" if e.input_psnr is not None else ""
    return f"{fmt.psnr(e.psnr)}{inp} {e.dataset or ''}".rstrip()


def run_val_set(run_dir: Path) -> str | None:
    """The validation set the run itself used (data.val of its preset.yaml)."""
    try:
        data = read_preset_data(RunPaths(run_dir).preset)
    except UserError:
        return None
    val = (data.get("data") or {}).get("val") if isinstance(data.get("data"), dict) else None
    return val if isinstance(val, str) and val else None


class SnapshotsScreen(BaseScreen):
    """The weights a run wrote, the ONNX models frozen from them, and what can be done with them."""

    HELP = (
        "Periodic and final snapshots with the validation PSNR at their step, and "
        "ONNX models frozen from them. Validate runs `n2n-core validate` (or "
        "validate-frozen for ONNX) on a data set — a folder or builtin:photos-val; "
        "it starts at the run's own validation set. The result (with the noisy "
        "input's PSNR) is stored in the run's metrics.jsonl as an eval record, shown "
        "in the Validated column, and appended to log.txt. Freeze writes an ONNX "
        "model beside the snapshot (asking before replacing one); infer denoises an "
        "image (or a folder) into the run's samples/ and shows it beside the input — "
        "with every marked snapshot (space) when some are marked, so two snapshots "
        "are compared crop for crop. The built-in models (builtin:photo, "
        "builtin:quickstart) are listed last, with the score recorded when they were "
        "made: mark one beside the run's snapshot to compare them on the same image, or "
        "validate it on the run's validation set (shown, never stored in this run)."
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
        self.last_dataset = run_val_set(self.run_dir) or _default_dataset()
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
        # A narrow terminal drops Size, then Written; Validated takes what is left.
        table.set_columns(
            [
                Col("Snapshot", "Snapshot", 31),  # room for "● snapshot-00000050.safetensors"
                Col("Step", "Step", 7),
                Col("PSNR", "PSNR", 6),
                Col("Validated", "Validated", 30, min=16, grow=-1),
                Col("Written", "Written", 9, drop=2),
                Col("Size", "Size", 8, drop=1),
            ]
        )
        self.query_one("#snap-result", Static).display = False
        self.reload()
        self.set_interval(AGES_S, lambda: self._show(self.snaps))
        table.focus()

    @work(
        thread=True, exclusive=True, group="snap-list", exit_on_error=False, name="list snapshots"
    )
    def reload(self) -> None:
        snaps = list_snapshots(self.run_dir) + builtin_models()
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
                    _validated(s.validated),
                    "built-in" if s.builtin else fmt.age(s.mtime, now),
                    _size(s.size),
                ),
            )
            for s in snaps
        ]
        self.query_one(RunsTable).sync(rows)
        title = self.query_one("#snap-title", Static)
        own = [s for s in snaps if not s.builtin]
        if not own:
            title.update(
                Text(
                    f"{self.run_dir}: no snapshots yet "
                    "(they are written every snapshot_every steps and at the end)"
                )
            )
        else:
            title.update(
                Text(
                    f"{len(own)} file{'s' if len(own) > 1 else ''} "
                    f"in {RunPaths(self.run_dir).snapshots}"
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
                self.validate(snap, str(path))

        self.app.push_screen(
            PathModal(
                f"Validate {snap.name}",
                "Data set: a folder of images, or builtin:photos-val. It starts at the "
                "run's own validation set; the result is stored in the run's records.",
                self.last_dataset,
                want_dir=True,
                specs=("builtin:",),
            ),
            chosen,
        )

    @work(thread=True, exclusive=True, group="snap-action", exit_on_error=False, name="validate")
    def validate(self, snap: Snapshot, dataset: str) -> None:
        if snap.onnx:
            args = ["validate-frozen", "--model", str(snap.path)]
        else:
            args = ["validate", "--snapshot", str(snap.ref)]
        res = run_core([*args, "--dataset-dir", dataset, "--json"])
        data = res.json() if res.ok else None
        if not res.ok or data is None:
            msg = res.error_line() if not res.ok else f"n2n-core {args[0]} printed no JSON result"
            self.app.call_from_thread(self._result, f"validate failed: {msg}", True)
            return
        if snap.builtin:  # not this run's model: its records stay the run's own
            where = [f"{snap.builtin} is not this run's model: not stored in it"]
        else:
            where = [self._store(snap, dataset, data)]
            try:
                line = validation_line(snap.path, dataset, data, self.app.clock())
                append_log(self.run_dir, line)
                where.append("appended to log.txt")
            except (OSError, UserError) as e:
                why = e.strerror if isinstance(e, OSError) and e.strerror else e
                where.append(f"could not append to log.txt: {why}")
        psnr, inp = data.get("psnr"), data.get("input_psnr")
        t = Text()
        t.append(f"PSNR {fmt.psnr(psnr)} dB", style="bold")
        if isinstance(inp, int | float):
            t.append(f"   input {fmt.psnr(inp)} dB")
            if isinstance(psnr, int | float):
                t.append(f"   gain {psnr - inp:+.2f} dB", style="bold")
        t.append(colour_text(data))
        extras = ", ".join(f"{k} {data[k]}" for k in ("images", "noise", "seed") if k in data)
        t.append(f"\n{snap.name} on {dataset}  ({extras})\n{'; '.join(where)}")
        self.app.call_from_thread(self._result, t)
        self.reload()

    def _store(self, snap: Snapshot, dataset: str, data: dict[str, Any]) -> str:
        """The result as an eval record in the run's metrics.jsonl; says where it went."""

        # A live run's log belongs to its trainer (a resume may rewrite it).
        if effective_status(read_run_info(self.run_dir)) == "running":
            return "not stored in metrics.jsonl while the run is training"
        rec = EvalRecord.of_validation(
            data, step=snap.step, time=self.app.clock(), snapshot=snap.name, dataset=dataset
        )
        try:
            with MetricsWriter(RunPaths(self.run_dir).metrics) as w:
                w.write(rec)
        except OSError as e:
            return f"could not store it in metrics.jsonl: {e.strerror}"
        return "stored in metrics.jsonl"

    # -- freeze ------------------------------------------------------------------

    def action_freeze(self) -> None:
        snap = self.selected()
        if not snap:
            return
        if snap.onnx:
            self.notify(f"{snap.name} is already an ONNX model", title="Freeze")
            return
        if snap.builtin:  # its file lives in the installed package, which is not ours to write
            self.notify(
                f"freeze it where you want it: n2n-core freeze --snapshot {snap.builtin} "
                "--out MODEL.onnx",
                title="Freeze",
                markup=False,
            )
            return
        out = snap.path.with_suffix(".onnx")

        def go(yes: bool | None = True) -> None:
            if yes:
                self._result(f"freezing {snap.name} → {out} …")
                self.freeze(snap.path, out)

        if out.exists():
            body = f"{out} exists (frozen earlier). Replace it with a new export of {snap.name}?"
            self.app.push_screen(ConfirmModal("Replace ONNX model?", body, yes="Replace"), go)
        else:
            go()

    @work(thread=True, exclusive=True, group="snap-action", exit_on_error=False, name="freeze")
    def freeze(self, snapshot: Path, out: Path) -> None:
        res = run_core(["freeze", "--snapshot", str(snapshot), "--out", str(out)])
        if not res.ok:
            self.app.call_from_thread(self._result, f"freeze failed: {res.error_line()}", True)
            return
        self.app.call_from_thread(
            self._result,
            Text.assemble(
                ("ONNX model written: ", "bold"), str(out), " (listed here: v validates it)"
            ),
        )
        self.reload()

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
            jobs = [(s.ref, infer_out(self.run_dir, path, s.ref)) for s in chosen_snaps]
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
