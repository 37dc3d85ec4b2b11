"""The argument parser of ``n2n-core``: every command, flag and choice.

Choices are derived from the config types (devices, precisions, noise types,
executors), never retyped here.
"""

from __future__ import annotations

import argparse
from typing import get_args

from n2n_core.config.schema import LEVEL_PARAM, NOISE_TYPES, Device, Executor, MathMode, Precision
from n2n_core.data.fetch import CATALOGUE
from n2n_core.errors import UserError
from n2n_core.evaluation.engines import ENGINES
from n2n_core.pretrained import DEFAULT_MODEL, PREFIX
from n2n_core.runs.curves import XAxis
from n2n_core.version import package_version

DEFAULT_RESULTS = "results"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as our one-line ``error:`` with exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


# A run's "eval dB" is its best snapshot at one noise strength, like with like.
EVAL_LEVEL = {
    "type": float,
    "metavar": "LEVEL",
    "help": "the noise strength the eval column scores (e.g. 15 for gaussian sigma 15; "
    "default: each run's own validation level)",
}


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


def _math_flag(p: argparse.ArgumentParser) -> None:
    """The same --math for every command that computes on a device."""
    p.add_argument(
        "--math",
        choices=get_args(MathMode),
        default="high_precision",
        help="high_performance allows TF32/HF32 matmuls on CUDA/Ascend (default: full fp32)",
    )


def _presets_dir_flag(p: argparse.ArgumentParser) -> None:
    """The same --presets-dir for every command that finds a preset by name."""
    p.add_argument(
        "--presets-dir",
        metavar="DIR",
        help="local presets: add to and override the built-in ones (default: ./presets)",
    )


def build_parser() -> argparse.ArgumentParser:
    devices = list(get_args(Device))
    # what --noise can name: every noise.type but `none` (own data has no model to score with)
    noises = [n for n in NOISE_TYPES if n != "none"]
    p = _Parser(prog="n2n-core", description="Noise2Noise denoising engine (headless).")
    p.add_argument("--version", action="version", version=f"n2n-core {package_version()}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("run", help="train a preset (a name, or a .yaml file) into a new run folder")
    r.add_argument("preset", metavar="PRESET", help="a preset name (n2n-core presets) or a file")
    _presets_dir_flag(r)
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
    v.add_argument("--snapshot", required=True, help="a snapshot file or builtin:NAME")
    v.add_argument("--dataset-dir", required=True)
    v.add_argument("--noise", choices=noises)
    v.add_argument("--seed", type=_seed, default=0)
    v.add_argument("--device", default="cpu", choices=devices)
    v.add_argument("--samples-dir", help="write noisy | denoised | clean strips here")
    _math_flag(v)
    v.add_argument("--json", action="store_true")

    i = sub.add_parser("infer", help="denoise an image (or a folder of images) with a snapshot")
    i.add_argument(
        "--snapshot",
        help=f"a snapshot file or builtin:NAME (default: {PREFIX}{DEFAULT_MODEL}, n2n-core models)",
    )
    i.add_argument("--image", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--device", default="cpu", choices=devices)
    i.add_argument(
        "--tile", type=int, default=0, help="tile size for large images (0: whole image)"
    )
    i.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto: the fastest this machine measured (n2n-core bench), see README",
    )
    _math_flag(i)

    f = sub.add_parser("freeze", help="export a snapshot to ONNX")
    f.add_argument("--snapshot", required=True, help="a snapshot file or builtin:NAME")
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
    fe.add_argument(
        "--max-bytes",
        type=_positive_int,
        default=None,
        help="refuse a download larger than this (default 8 GiB; the largest set is 4.5 GB)",
    )

    ps = sub.add_parser(
        "presets", help="the presets a name finds: built-in ones and the local folder's"
    )
    _presets_dir_flag(ps)
    ps.add_argument("--json", action="store_true")

    mo = sub.add_parser("models", help="the trained models in the box (builtin:NAME)")
    mo.add_argument("--json", action="store_true")

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
    ru.add_argument("--eval-level", **EVAL_LEVEL)

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
    ev.add_argument(
        "target", metavar="SNAPSHOT|RUN_DIR", help="a snapshot, a run folder or builtin:NAME"
    )
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
    ev.add_argument("--device", default="cpu", choices=devices)
    _math_flag(ev)
    ev.add_argument("--json", action="store_true")

    df = sub.add_parser(
        "diff", help="the preset keys, then the provenance, that differ between two runs"
    )
    df.add_argument("run_a")
    df.add_argument("run_b")
    df.add_argument("--json", action="store_true")

    rr = sub.add_parser(
        "rerun",
        help="a new run with a run's preset, seed and data (--set on top); "
        "says first what differs from the original's provenance",
    )
    rr.add_argument("run_dir", metavar="RUN")
    rr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    rr.add_argument("--results-dir", help="where the new run goes (default: beside RUN)")

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
    ex.add_argument("--eval-level", **EVAL_LEVEL)

    sw = sub.add_parser(
        "sweep",
        help="run a preset over a grid of values or an Optuna search (sweep PRESET) or manage a sweep "
        "(sweep resume|status|cancel SWEEP_DIR)",
    )
    sw.add_argument("target", metavar="PRESET|resume|status|cancel")
    sw.add_argument("sweep_dir", nargs="?", metavar="SWEEP_DIR")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sw.add_argument("--seeds", type=int, default=1)
    sw.add_argument("--name")
    sw.add_argument("--results-dir", default=DEFAULT_RESULTS)
    _presets_dir_flag(sw)
    sw.add_argument("--slots", type=int)
    sw.add_argument("--devices", metavar="LIST", help="accelerator ids to use, e.g. 0,1,2,3")
    sw.add_argument("--executor", choices=get_args(Executor), default="local")
    sw.add_argument("--detach", action="store_true", help="run the scheduler in the background")
    sw.add_argument("--json", action="store_true")
    _search_flags(sw)

    tg = sub.add_parser("tag", help="add (+TAG) or remove (-TAG) tags of a run")
    tg.add_argument("run_dir")
    tg.add_argument("changes", nargs=argparse.REMAINDER, metavar="+TAG|-TAG")

    nt = sub.add_parser("note", help="set a run's note (an empty TEXT clears it)")
    nt.add_argument("run_dir")
    nt.add_argument("text", nargs="+", metavar="TEXT")
    return p


def _search_flags(sw: argparse.ArgumentParser) -> None:
    """``sweep PRESET --search ...``: trials chosen by Optuna, pruned early (README, "Searching instead of a grid")."""
    g = sw.add_argument_group("search (instead of --grid; needs optuna: pip install 'n2n[search]')")
    g.add_argument("--search", choices=("tpe", "random", "grid"))
    g.add_argument("--trials", type=int, help="how many points to run (grid: all by default)")
    g.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=DIST",
        help="loguniform(a,b), uniform(a,b), int(a,b) or choice(v1,v2,...)",
    )
    g.add_argument(
        "--objective",
        default="best_psnr",
        metavar="best_psnr|last_psnr|eval:DATASET",
        help="what a trial scores (eval: n2n-core evaluate of its final snapshot on DATASET)",
    )
    g.add_argument("--search-seed", type=int, help="the sampler's seed (default: train.seed)")
    g.add_argument(
        "--startup", type=int, default=10, help="tpe: random trials before the model (10)"
    )
    g.add_argument("--prune", choices=("none", "median", "asha"), default="none")
    g.add_argument(
        "--prune-warmup",
        type=int,
        default=0,
        metavar="STEPS",
        help="no trial is pruned before this training step (asha: its first rung)",
    )
    g.add_argument(
        "--prune-startup",
        type=int,
        default=2,
        metavar="N",
        help="median: no pruning until N trials completed (2)",
    )
