"""TensorBoard event files for a run: written live during training, or exported afterwards.

``metrics.jsonl`` stays the run's record; this module only mirrors it into
``RUN_DIR/tensorboard/`` for people who live in TensorBoard. Scalars:
``train/loss``, ``train/lr``, ``train/ms_per_step``, ``val/psnr``,
``val/input_psnr``, the ``sys`` records as ``sys/rankR/<field>`` and
``sys/rankR/deviceI/<field>``; images: the noisy | denoised | clean sample strips as
``samples/<image>``. ``tensorboard`` is an optional extra (``pip install
'n2n[tensorboard]'``); without it both paths stop with a ``UserError`` saying so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from n2n_core.errors import UserError
from n2n_core.runs.folders import sample_files
from n2n_core.runs.layout import RunPaths

TB_DIR = "tensorboard"
INSTALL_HINT = "install it with: pip install 'n2n[tensorboard]' (or pip install tensorboard)"


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(f"tensorboard: package not installed; {INSTALL_HINT}") from None
    return SummaryWriter


class TBWriter:
    """The run's scalars and sample images as TensorBoard events under ``log_dir``."""

    def __init__(self, log_dir: str | Path):
        cls = _summary_writer_class()
        self.log_dir = Path(log_dir)
        try:
            self._w = cls(log_dir=str(self.log_dir), flush_secs=10)
        except OSError as e:
            raise UserError(f"{self.log_dir}: cannot write TensorBoard events ({e})") from None

    def train(
        self, step: int, loss: float, lr: float, ms: float, walltime: float | None = None
    ) -> None:
        self._w.add_scalar("train/loss", loss, step, walltime=walltime)
        self._w.add_scalar("train/lr", lr, step, walltime=walltime)
        self._w.add_scalar("train/ms_per_step", ms, step, walltime=walltime)

    def val(self, step: int, psnr: float, input_psnr: float, walltime: float | None = None) -> None:
        self._w.add_scalar("val/psnr", psnr, step, walltime=walltime)
        self._w.add_scalar("val/input_psnr", input_psnr, step, walltime=walltime)
        self._w.flush()  # validations are rare and the ones people wait for

    def sys(self, step: int, ranks, walltime: float | None = None) -> None:
        """Every number of a sys record (RankStats); absent sensors are simply absent."""
        for r in ranks:
            for name, value in _numbers(r, ("rank", "devices")):
                self._w.add_scalar(f"sys/rank{r.rank}/{name}", value, step, walltime=walltime)
            for dv in r.devices:
                for name, value in _numbers(dv, ("index", "type")):
                    tag = f"sys/rank{r.rank}/device{dv.index}/{name}"
                    self._w.add_scalar(tag, value, step, walltime=walltime)

    def image(self, step: int, tag: str, img_u8_hwc: np.ndarray) -> None:
        img = np.asarray(img_u8_hwc, dtype=np.uint8)
        if img.ndim == 2:
            img = img[:, :, None]
        self._w.add_image(tag, img, step, dataformats="HWC")

    def sample_images(self, step: int, samples_dir: str | Path) -> int:
        """Log the strips validation wrote at ``step`` (``step-%08d-<name>.png``); their count."""
        n = 0
        for path, s, name in sample_files(samples_dir):
            if s == step:
                self.image(step, f"samples/{name}", _read_png(path))
                n += 1
        return n

    def close(self) -> None:
        self._w.close()


def _numbers(obj, skip: tuple[str, ...]):
    from dataclasses import fields

    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name not in skip and value is not None:
            yield f.name, value


def _read_png(path: Path) -> np.ndarray:
    from n2n_core.data.images import load_image

    return load_image(path, 3)


def write_tensorboard_events(run_dir: str | Path) -> Path:
    """Convert a run's metrics.jsonl and sample strips into ``RUN_DIR/tensorboard/``.

    Earlier event files in that folder (a live run's, or a previous export) are
    replaced, so exporting twice does not show every point twice.
    """
    from n2n_core.runs.folders import resolve_run_dir
    from n2n_core.runs.records import SysRecord, TrainRecord, ValRecord, read_metrics

    run = resolve_run_dir(run_dir)
    _summary_writer_class()  # fail before touching anything when the package is missing
    out = run / TB_DIR
    try:
        out.mkdir(exist_ok=True)
        for old in out.glob("events.out.tfevents.*"):
            old.unlink()
    except OSError as e:
        raise UserError(f"{out}: cannot write TensorBoard events ({e.strerror or e})") from None
    tb = TBWriter(out)
    try:
        for rec in read_metrics(RunPaths(run).metrics):
            step, t = rec.step, rec.time
            if step is None:
                continue
            if isinstance(rec, TrainRecord):
                if rec.loss is not None and rec.lr is not None and rec.ms_per_step is not None:
                    tb.train(step, rec.loss, rec.lr, rec.ms_per_step, walltime=t)
            elif isinstance(rec, ValRecord):
                if rec.psnr is not None and rec.input_psnr is not None:
                    tb.val(step, rec.psnr, rec.input_psnr, walltime=t)
            elif isinstance(rec, SysRecord) and rec.ranks:
                tb.sys(step, rec.ranks, walltime=t)
        for path, step, name in sample_files(RunPaths(run).samples):
            try:
                tb.image(step, f"samples/{name}", _read_png(path))
            except UserError:
                continue  # a torn sample PNG is not worth failing the export for
    finally:
        tb.close()
    return out
