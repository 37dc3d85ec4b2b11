"""``n2n-core``: the headless command line.

Every user error surfaces here as one ``error: ...`` line on stderr and exit
status 2 (``main``); a traceback only with ``N2N_DEBUG=1``. ``--json`` prints
exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import get_args

from n2n_core.config.preset import LEVEL_PARAM, NOISE_TYPES, Device, Executor, MathMode, Precision
from n2n_core.data.fetch import CATALOGUE, fetch_hint
from n2n_core.errors import EXIT_STOPPED, EXIT_USER, UserError, error_line, printable
from n2n_core.process import ompenv
from n2n_core.runs.curves import XAxis

DEFAULT_RESULTS = "results"
# Commands whose convolutions run on OpenMP threads: how those threads wait is
# decided before torch loads (ompenv.py); torchrun ranks and sweep slots inherit it.
COMPUTE_COMMANDS = frozenset({"run", "resume", "sweep", "validate", "infer", "bench", "evaluate"})


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as our one-line ``error:`` with exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v < 0 or v != v:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def _replay_speed(text: str) -> float:
    # Below a thousandth a run of minutes replays for days: a typo, not a wish.
    v = _positive_float(text)
    if 0 < v < 1e-3 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or from 0.001 up: {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= v < 2**32:  # what numpy's and torch's generators accept
        raise argparse.ArgumentTypeError(f"must be in 0..{2**32 - 1}: {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    devices = list(get_args(Device))
    # what --noise can name: every noise.type but `none` (own data has no model to score with)
    noises = [n for n in NOISE_TYPES if n != "none"]
    p = _Parser(prog="n2n-core", description="Noise2Noise denoising engine (headless).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("run", help="train a preset into a new run folder")
    r.add_argument("preset")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--nproc", type=int)
    r.add_argument("--nnodes", type=int)
    r.add_argument("--node-rank", type=int)
    r.add_argument("--rdzv-endpoint")
    r.add_argument("--device", choices=devices)
    r.add_argument("--precision", choices=list(get_args(Precision)))
    r.add_argument("--results-dir", default=DEFAULT_RESULTS)
    r.add_argument("--name")

    rs = sub.add_parser("resume", help="continue an interrupted run in its folder")
    rs.add_argument("run_dir")
    # One node of a multi-node run whose nodes share the run folder (a Slurm job's
    # nodes): only node 0 writes it.
    rs.add_argument("--nnodes", type=int, help=argparse.SUPPRESS)
    rs.add_argument("--node-rank", type=int, default=0, help=argparse.SUPPRESS)
    rs.add_argument("--rdzv-endpoint", help=argparse.SUPPRESS)

    v = sub.add_parser("validate", help="PSNR of a snapshot on a folder of clean images")
    v.add_argument("--snapshot", required=True)
    v.add_argument("--dataset-dir", required=True)
    v.add_argument("--noise", choices=noises)
    v.add_argument("--seed", type=_seed, default=0)
    v.add_argument("--device", default="cpu", choices=devices)
    v.add_argument("--samples-dir", help="write noisy | denoised | clean strips here")
    v.add_argument(
        "--math",
        choices=get_args(MathMode),
        default="high_precision",
        help="high_performance allows TF32/HF32 matmuls on CUDA/Ascend (default: full fp32)",
    )
    v.add_argument("--json", action="store_true")

    i = sub.add_parser("infer", help="denoise an image (or a folder of images) with a snapshot")
    i.add_argument("--snapshot", required=True)
    i.add_argument("--image", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--device", default="cpu", choices=devices)
    i.add_argument(
        "--tile", type=int, default=0, help="tile size for large images (0: whole image)"
    )
    i.add_argument("--engine", choices=["auto", "torch", "onnx"], default="auto")

    f = sub.add_parser("freeze", help="export a snapshot to ONNX")
    f.add_argument("--snapshot", required=True)
    f.add_argument("--out", required=True)

    vf = sub.add_parser(
        "validate-frozen",
        help="PSNR of a frozen ONNX model (onnxruntime CPU provider: plain fp32 math, no TF32)",
    )
    vf.add_argument("--model", required=True)
    vf.add_argument("--dataset-dir", required=True)
    vf.add_argument("--noise", choices=noises)
    vf.add_argument("--seed", type=_seed, default=0)
    vf.add_argument("--json", action="store_true")

    inf = sub.add_parser(
        "infer-frozen", help="denoise an image (or folder) with a frozen ONNX model"
    )
    inf.add_argument("--model", required=True)
    inf.add_argument("--image", required=True)
    inf.add_argument("--out", required=True)
    inf.add_argument("--tile", type=int, default=0)

    ds = sub.add_parser("dataset", help="build data sets")
    dsub = ds.add_subparsers(dest="dataset_cmd", metavar="KIND", parser_class=_Parser)
    dsub.required = True
    b = dsub.add_parser("build", help="pack an image folder into one memory-mapped training file")
    b.add_argument("--src", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--channels", type=int, choices=[1, 3], default=3)
    m = dsub.add_parser("mri", help="slice NIfTI volumes into MRI training/validation sets")
    m.add_argument("--src", required=True)
    m.add_argument("--out", required=True)
    fe = dsub.add_parser(
        "fetch", help="download a public data set (pinned SHA-256), extract it and build it"
    )
    fe.add_argument("name", metavar="NAME", choices=list(CATALOGUE), help=", ".join(CATALOGUE))
    fe.add_argument("--out", required=True, help="folder for the downloads and the result")
    fe.add_argument(
        "--sha256",
        metavar="HEX|FILE",
        help="for sets without a published hash: the file's SHA-256, or a SHA256SUMS "
        "file (`sha256sum` format) for a set of many files",
    )
    fe.add_argument("--archive", help="an archive you downloaded (imagenet-val)")

    ru = sub.add_parser("runs", help="list run folders")
    ru.add_argument("--results-dir", default=DEFAULT_RESULTS)
    ru.add_argument("--json", action="store_true")
    ru.add_argument("--tag", action="append", default=[], help="only runs with this tag")
    ru.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only runs whose preset key has this value, e.g. noise.type=poisson",
    )

    rp = sub.add_parser("replay", help="replay a run's metrics log in the terminal")
    rp.add_argument("run_dir")
    rp.add_argument(
        "--speed",
        type=_replay_speed,
        default=0.0,
        help="times real time (0: the final state at once; from 0.001 up)",
    )

    be = sub.add_parser("bench", help="benchmark training, inference and the data pipeline")
    be.add_argument("--json", action="store_true")
    be.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")

    dv = sub.add_parser("devices", help="the devices present here and the CPU cores available")
    dv.add_argument("--json", action="store_true")

    tb = sub.add_parser("export-tb", help="convert a run's metrics.jsonl to TensorBoard events")
    tb.add_argument("run_dir")

    ev = sub.add_parser(
        "evaluate", help="PSNR matrix: snapshots x data sets x noise levels, beside baselines"
    )
    ev.add_argument("target", metavar="SNAPSHOT|RUN_DIR")
    ev.add_argument(
        "--dataset-dir", dest="dataset_dirs", action="append", required=True, metavar="DIR"
    )
    ev.add_argument("--noise", choices=list(LEVEL_PARAM))
    ev.add_argument("--levels", help="noise strengths, e.g. 15,25,50 (sigma on 0..255)")
    ev.add_argument("--all-snapshots", action="store_true", help="every snapshot of the run")
    ev.add_argument(
        "--baselines", default="", help="classical denoisers to score too: noisy,nlm,bm3d"
    )
    ev.add_argument(
        "--max-images", type=_positive_int, help="only the first N images of each folder, by name"
    )
    ev.add_argument("--seed", type=_seed, default=0)
    ev.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "npu", "mps"])
    ev.add_argument("--json", action="store_true")

    df = sub.add_parser("diff", help="the preset keys that differ between two runs")
    df.add_argument("run_a")
    df.add_argument("run_b")
    df.add_argument("--json", action="store_true")

    ex = sub.add_parser(
        "export", help="runs as CSV (every record), a plot of their curves, a Markdown table"
    )
    ex.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ex.add_argument("--csv", metavar="FILE")
    ex.add_argument("--plot", metavar="FILE.png|.svg")
    ex.add_argument("--x", choices=get_args(XAxis), default="step", help="x axis of --plot")
    ex.add_argument(
        "--markdown", action="store_true", help="print the runs' best results as Markdown"
    )

    sw = sub.add_parser(
        "sweep",
        help="run a preset over a grid of values (sweep PRESET) or manage a sweep "
        "(sweep resume|status|cancel SWEEP_DIR)",
    )
    sw.add_argument("target", metavar="PRESET|resume|status|cancel")
    sw.add_argument("sweep_dir", nargs="?", metavar="SWEEP_DIR")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sw.add_argument("--seeds", type=int, default=1)
    sw.add_argument("--name")
    sw.add_argument("--results-dir", default=DEFAULT_RESULTS)
    sw.add_argument("--slots", type=int)
    sw.add_argument("--devices", metavar="LIST", help="accelerator ids to use, e.g. 0,1,2,3")
    sw.add_argument("--executor", choices=get_args(Executor), default="local")
    sw.add_argument("--detach", action="store_true", help="run the scheduler in the background")
    sw.add_argument("--json", action="store_true")

    tg = sub.add_parser("tag", help="add (+TAG) or remove (-TAG) tags of a run")
    tg.add_argument("run_dir")
    tg.add_argument("changes", nargs=argparse.REMAINDER, metavar="+TAG|-TAG")

    nt = sub.add_parser("note", help="set a run's note (an empty TEXT clears it)")
    nt.add_argument("run_dir")
    nt.add_argument("text", nargs="+", metavar="TEXT")
    return p


# ---------------------------------------------------------------------------
# verbs


def cmd_run(a: argparse.Namespace, argv: list[str]) -> int:
    from n2n_core.config.preset import (
        apply_overrides,
        check_data_paths,
        check_name,
        read_preset_data,
        set_key,
        validate_preset,
    )

    if a.name is not None:
        check_name(a.name, "--name")
    data = read_preset_data(a.preset)
    data = apply_overrides(data, a.overrides)
    # The flags set their keys the way `--set runtime.KEY=...` does (an empty
    # `runtime:` section included).
    for key, val in (
        ("device", a.device),
        ("precision", a.precision),
        ("nproc", a.nproc),
        ("nnodes", a.nnodes),
        ("node_rank", a.node_rank),
        ("rdzv_endpoint", a.rdzv_endpoint),
    ):
        if val is not None:
            set_key(data, ["runtime", key], val, f"--{key.replace('_', '-')}")
    if a.name is not None:
        data["name"] = a.name
    preset = validate_preset(data, a.preset)
    check_data_paths(preset, fetch_hint)
    from n2n_core.training.launch import start_run

    return start_run(preset, a.results_dir, a.name, ["n2n-core", *argv])


def cmd_resume(a: argparse.Namespace) -> int:
    from n2n_core.training.launch import resume_run

    return resume_run(a.run_dir, a.nnodes, a.node_rank, a.rdzv_endpoint)


def _print_val(res, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(res.to_json()))
    else:
        colour = f"; {res.colour.describe()}" if res.colour else ""
        print(
            f"{printable(what)}: PSNR {res.psnr:.2f} dB on {res.images} image(s) "
            f"({res.noise}, seed {res.seed}); noisy input {res.input_psnr:.2f} dB{colour}"
        )


def cmd_validate(a: argparse.Namespace) -> int:
    from n2n_core.data.sources import open_val
    from n2n_core.engine.device import apply_math_mode, resolve_device
    from n2n_core.engine.noise import validation_noise
    from n2n_core.engine.snapshots import load_network
    from n2n_core.evaluation.protocol import torch_runner, validate

    device = resolve_device(a.device)
    apply_math_mode(device, a.math)
    net, snap = load_network(a.snapshot, device)
    if snap.meta.get("task") == "mri":
        from n2n_core.tasks.mri.validation import validate_mri_snapshot

        res = validate_mri_snapshot(net, snap, a.dataset_dir, seed=a.seed, device=device)
    else:
        noise = validation_noise(a.noise, snap.meta, str(a.snapshot))
        images = open_val(a.dataset_dir, snap.in_channels)
        samples = Path(a.samples_dir) if a.samples_dir else None
        if samples:
            from n2n_core.files.checks import check_output

            # Strips are named after the images: in the data set they would replace them.
            check_output(samples, "--samples-dir", input_folders=(a.dataset_dir,), folder=True)
            _make_dir(samples, "--samples-dir")
        res = validate(
            torch_runner(net, device), images, noise, a.seed, samples, samples and len(images) or 0
        )
    _print_val(res, a.json, str(a.snapshot))
    return 0


def _make_dir(path: Path, flag: str) -> None:
    """Create an output folder; an existing file or an unwritable parent is a UserError."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: {flag} is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path}: cannot create {flag} ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path}: {flag} is not writable")


def image_jobs(image: str, out: str, model: str | None = None) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file -> a file, a folder -> the same names in the out folder.

    Output names in folder mode: each input keeps its file name, except that a GIF
    (which is not written) becomes NAME.png. When two inputs would get the same
    output name (``a.gif`` and ``a.png``), every one of them keeps its full name and
    gains ``.png`` (``a.gif.png``, ``a.png.png``), so no result replaces another.
    No output may be one of the inputs (the same path, a hard link or a symlink to it),
    the ``model`` (snapshot or ONNX file), a device, FIFO or symlink; a folder --out
    may not lie inside the --image folder.
    """
    from n2n_core.data.images import list_images
    from n2n_core.files.checks import check_output, input_ids

    src, dst = Path(image), Path(out)
    if not src.exists():
        raise UserError(f"{src}: image not found")
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise UserError(f"{src}: no images found in folder")
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: --out must be a folder when --image is a folder")
        names = [f.stem + ".png" if f.suffix.lower() == ".gif" else f.name for f in files]
        clashes = {n for n in names if names.count(n) > 1}
        jobs = [
            (f, dst / (f.name + ".png" if n in clashes else n))
            for f, n in zip(files, names, strict=True)
        ]
    else:
        jobs = [(src, dst / src.name if dst.is_dir() else dst)]
    if dst.exists() or not src.is_dir():  # a folder not made yet holds nothing to spoil
        keep = input_ids([f for f, _ in jobs] + ([model] if model else []))
        for _, out_file in jobs:
            check_output(out_file, "a denoised image", inputs=keep)
    if src.is_dir():
        check_output(dst, "--out", input_folders=(src,), folder=True)
        _make_dir(dst, "--out")
    return jobs


def cmd_infer(a: argparse.Namespace) -> int:
    # Checked before torch loads: a wrong --out is an answer in a fraction of a second.
    jobs = image_jobs(a.image, a.out, a.snapshot)
    from n2n_core.evaluation.infer import denoise_files, make_runner_for_snapshot

    runner, channels = make_runner_for_snapshot(a.snapshot, a.device, a.engine)
    for src, dst in denoise_files(runner, jobs, channels, tile=a.tile):
        print(f"{src} -> {dst}")
    return 0


def cmd_dataset(a: argparse.Namespace) -> int:
    from n2n_core.files.checks import check_output

    if a.dataset_cmd == "fetch":
        from n2n_core.data.fetch import fetch_dataset

        with _download_bar() as progress:
            fetch_dataset(
                CATALOGUE[a.name],
                a.out,
                a.sha256,
                a.archive,
                progress,
                say=lambda msg: print(msg, flush=True),
            )
        return 0
    if a.dataset_cmd == "build":
        from n2n_core.data.packed import build_packed

        check_output(a.out, "the packed data set", input_folders=(a.src,))
        info = build_packed(a.src, a.out, a.channels)
        print(f"{info['out']}: {info['images']} images, {info['bytes'] / 1e6:.1f} MB")
        return 0
    from n2n_core.data.mri.dataset import build_mri_dataset

    check_output(a.out, "the MRI slices", input_folders=(a.src,), folder=True)
    info = build_mri_dataset(a.src, a.out)
    print(json.dumps(info) if isinstance(info, dict) else info)
    return 0


class _download_bar:
    """A rich progress bar on stderr, one task per file, as a ``fetch`` progress callback."""

    def __enter__(self):
        self.bar = None  # started at the first byte: an early error prints nothing else
        self.tasks: dict[str, int] = {}
        return self

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self.bar = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=total)
        self.bar.update(self.tasks[name], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def cmd_runs(a: argparse.Namespace) -> int:
    from n2n_core.runs.query import RunQuery
    from n2n_core.runs.summary import list_runs

    query = RunQuery.from_flags(a.tag, a.where)
    results = Path(a.results_dir)
    # The default folder not made yet is "no runs yet"; a folder the user named that is
    # not there is a typo, said as such (not an empty table that looks like lost runs).
    if a.results_dir != DEFAULT_RESULTS and not results.is_dir():
        what = "is not a folder" if results.exists() else "no such folder"
        raise UserError(f"--results-dir {a.results_dir}: {what}")
    runs = [r for r in list_runs(a.results_dir) if query.matches(r.path, r.info)]
    if a.json:
        print(json.dumps({"results_dir": str(a.results_dir), "runs": [r.to_json() for r in runs]}))
        return 0
    from n2n_core.cli.views import runs_table

    runs_table(runs, a.results_dir)
    return 0


def cmd_replay(a: argparse.Namespace) -> int:
    from n2n_core.cli.views import replay

    return replay(a.run_dir, a.speed)


def cmd_bench(a: argparse.Namespace) -> int:
    from n2n_core.bench.measure import main as bench_main

    return bench_main(as_json=a.json, quick=a.quick)


def cmd_freeze(a: argparse.Namespace) -> int:
    from n2n_core.evaluation.onnx import freeze
    from n2n_core.files.checks import check_output

    check_output(a.out, "the ONNX model", inputs=(a.snapshot,))
    out = freeze(a.snapshot, a.out)
    print(f"frozen model: {out}")
    return 0


def cmd_validate_frozen(a: argparse.Namespace) -> int:
    from n2n_core.evaluation.onnx import validate_frozen

    res = validate_frozen(a.model, a.dataset_dir, noise=a.noise, seed=a.seed)
    _print_val(res, a.json, str(a.model))
    return 0


def cmd_infer_frozen(a: argparse.Namespace) -> int:
    from n2n_core.evaluation.infer import denoise_files
    from n2n_core.evaluation.onnx import onnx_runner

    jobs = image_jobs(a.image, a.out, a.model)
    runner, channels = onnx_runner(a.model)
    for src, dst in denoise_files(runner, jobs, channels, tile=a.tile):
        print(f"{src} -> {dst}")
    return 0


def cmd_devices(a: argparse.Namespace) -> int:
    from n2n_core.engine.device import available_devices, cpu_cores

    devices, cores = available_devices(), cpu_cores()
    if a.json:
        print(json.dumps({"devices": devices, "cpu_cores": cores}))
    else:
        print(f"devices: {', '.join(devices)} (auto picks {devices[0]}); CPU cores: {cores}")
    return 0


def cmd_export_tb(a: argparse.Namespace) -> int:
    from n2n_core.runs.tensorboard import export_run

    out = export_run(a.run_dir)
    print(f"TensorBoard events: {out}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from n2n_core.cli.views import matrix_table, progress_on_stderr
    from n2n_core.engine.device import resolve_device
    from n2n_core.evaluation.matrix import parse_levels, plan, resolve_snapshots, run_matrix, store

    run_dir, snapshots = resolve_snapshots(a.target, a.all_snapshots)
    baselines = [b.strip() for b in a.baselines.split(",") if b.strip()]
    p = plan(snapshots, a.dataset_dirs, a.noise, parse_levels(a.levels), baselines, a.max_images)
    device = resolve_device(a.device)
    with progress_on_stderr(p.total_images(), "evaluate") as tick:
        m = run_matrix(p, device, a.seed, tick)
    if run_dir is not None and not store(m, run_dir):
        print(f"note: {run_dir} is still training; results not stored in it", file=sys.stderr)
    if a.json:
        print(json.dumps(m.to_json()))
    else:
        matrix_table(m)
    return 0


def _run_preset(path: str) -> dict:
    from n2n_core.config.preset import read_preset_data
    from n2n_core.runs.paths import resolve_run_dir

    return read_preset_data(resolve_run_dir(path) / "preset.yaml")


def cmd_diff(a: argparse.Namespace) -> int:
    from n2n_core.config.preset import ABSENT, preset_diff, show_value

    rows = preset_diff(_run_preset(a.run_a), _run_preset(a.run_b))
    if a.json:
        print(
            json.dumps(
                {
                    "a": a.run_a,
                    "b": a.run_b,
                    "differ": [
                        {
                            "key": k,
                            "a": None if va is ABSENT else va,
                            "b": None if vb is ABSENT else vb,
                        }
                        for k, va, vb in rows
                    ],
                }
            )
        )
        return 0
    if not rows:
        print("no preset keys differ")
    for key, va, vb in rows:
        print(f"{key}: {show_value(va)} -> {show_value(vb)}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from n2n_core.files.checks import check_output
    from n2n_core.runs.export import markdown, summaries, write_csv, write_plot

    dirs, runs = summaries(a.run_dirs)
    for path, what in ((a.csv, "the CSV file"), (a.plot, "the plot")):
        if path:  # refused before writing anything; never into a run it reads
            check_output(path, what, input_folders=tuple(dirs))
    if a.csv:
        print(f"CSV: {write_csv(dirs, a.csv)}", file=sys.stderr if a.markdown else sys.stdout)
    if a.plot:
        print(
            f"plot: {write_plot(dirs, a.plot, a.x)}", file=sys.stderr if a.markdown else sys.stdout
        )
    if a.markdown or not (a.csv or a.plot):
        sys.stdout.write(markdown(runs))
    return 0


def cmd_sweep(a: argparse.Namespace, argv: list[str]) -> int:
    from n2n_core.cli import sweep as sweepcli

    if a.target in ("resume", "status", "cancel"):
        if not a.sweep_dir:
            raise UserError(f"sweep {a.target}: SWEEP_DIR is missing")
        return {
            "resume": sweepcli.resume,
            "status": sweepcli.status,
            "cancel": sweepcli.cancel,
        }[a.target](a)
    if a.sweep_dir:
        raise UserError(
            f"sweep {a.target} {a.sweep_dir}: one preset; the actions are resume, status, cancel"
        )
    return sweepcli.start(a, ["n2n-core", *argv])


def cmd_tag(a: argparse.Namespace) -> int:
    from n2n_core.runs.info import retag_run
    from n2n_core.runs.paths import resolve_run_dir

    tags = retag_run(resolve_run_dir(a.run_dir), a.changes)
    print(f"{a.run_dir}: tags {' '.join(tags) if tags else '(none)'}")
    return 0


def cmd_note(a: argparse.Namespace) -> int:
    from n2n_core.runs.info import set_run_note
    from n2n_core.runs.paths import resolve_run_dir

    note = set_run_note(resolve_run_dir(a.run_dir), " ".join(a.text))
    print(f"{a.run_dir}: note {'cleared' if not note else 'set'}")
    return 0


def dispatch(a: argparse.Namespace, argv: list[str]) -> int:
    table = {
        "run": lambda: cmd_run(a, argv),
        "resume": lambda: cmd_resume(a),
        "validate": lambda: cmd_validate(a),
        "infer": lambda: cmd_infer(a),
        "freeze": lambda: cmd_freeze(a),
        "validate-frozen": lambda: cmd_validate_frozen(a),
        "infer-frozen": lambda: cmd_infer_frozen(a),
        "dataset": lambda: cmd_dataset(a),
        "runs": lambda: cmd_runs(a),
        "replay": lambda: cmd_replay(a),
        "bench": lambda: cmd_bench(a),
        "export-tb": lambda: cmd_export_tb(a),
        "evaluate": lambda: cmd_evaluate(a),
        "diff": lambda: cmd_diff(a),
        "export": lambda: cmd_export(a),
        "sweep": lambda: cmd_sweep(a, argv),
        "tag": lambda: cmd_tag(a),
        "note": lambda: cmd_note(a),
        "devices": lambda: cmd_devices(a),
    }
    return table[a.cmd]()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("N2N_DEBUG") == "1"
    try:
        a = build_parser().parse_args(argv)
        if a.cmd in COMPUTE_COMMANDS and not (
            a.cmd == "sweep" and a.target in ("status", "cancel")
        ):
            ompenv.apply()
        code = dispatch(a, argv)
    except UserError as e:
        if debug:
            raise
        for problem in e.problems:
            print(error_line(problem), file=sys.stderr)
        code = EXIT_USER
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = EXIT_STOPPED
    except BrokenPipeError:
        code = 0
    except MemoryError:
        if debug:
            raise
        print("error: out of memory", file=sys.stderr)
        code = 1
    except Exception as e:  # a bug, not the user's fault: still no traceback unless asked
        if debug:
            raise
        print(
            f"error: internal error: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            "(set N2N_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
