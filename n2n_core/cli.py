"""``n2n-core``: the headless command line.

Every user error surfaces here as one ``error: ...`` line on stderr and exit
status 2 (``main``); a traceback only with ``N2N_DEBUG=1``. ``--json`` prints
exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .errors import EXIT_STOPPED, UserError

# OpenMP worker threads that spin at barriers burn their time slice while a partner
# thread waits for a core; on a shared 2-core machine that made a 2-thread training
# step 9x slower (3097 vs 334 ms/step, benchmarks/RESULTS.md); its cost on a quiet
# machine is what `n2n-core bench` there shows. Read when torch loads OpenMP, so set
# before any import of torch; the user's own setting wins; training workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_RESULTS = "results"


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


def build_parser() -> argparse.ArgumentParser:
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
    r.add_argument("--device", choices=["auto", "cpu", "cuda", "npu", "mps"])
    r.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    r.add_argument("--results-dir", default=DEFAULT_RESULTS)
    r.add_argument("--name")

    rs = sub.add_parser("resume", help="continue an interrupted run in its folder")
    rs.add_argument("run_dir")

    v = sub.add_parser("validate", help="PSNR of a snapshot on a folder of clean images")
    v.add_argument("--snapshot", required=True)
    v.add_argument("--dataset-dir", required=True)
    v.add_argument(
        "--noise", choices=["gaussian", "poisson", "text", "impulse", "bernoulli_spectral"]
    )
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "npu", "mps"])
    v.add_argument("--samples-dir", help="write noisy | denoised | clean strips here")
    v.add_argument("--json", action="store_true")

    i = sub.add_parser("infer", help="denoise an image (or a folder of images) with a snapshot")
    i.add_argument("--snapshot", required=True)
    i.add_argument("--image", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "npu", "mps"])
    i.add_argument(
        "--tile", type=int, default=0, help="tile size for large images (0: whole image)"
    )
    i.add_argument("--engine", choices=["auto", "torch", "onnx"], default="auto")

    f = sub.add_parser("freeze", help="export a snapshot to ONNX")
    f.add_argument("--snapshot", required=True)
    f.add_argument("--out", required=True)

    vf = sub.add_parser("validate-frozen", help="PSNR of a frozen ONNX model")
    vf.add_argument("--model", required=True)
    vf.add_argument("--dataset-dir", required=True)
    vf.add_argument(
        "--noise", choices=["gaussian", "poisson", "text", "impulse", "bernoulli_spectral"]
    )
    vf.add_argument("--seed", type=int, default=0)
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

    ru = sub.add_parser("runs", help="list run folders")
    ru.add_argument("--results-dir", default=DEFAULT_RESULTS)
    ru.add_argument("--json", action="store_true")

    rp = sub.add_parser("replay", help="replay a run's metrics log in the terminal")
    rp.add_argument("run_dir")
    rp.add_argument("--speed", type=_positive_float, default=0.0)

    be = sub.add_parser("bench", help="benchmark training, inference and the data pipeline")
    be.add_argument("--json", action="store_true")
    be.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")

    dv = sub.add_parser("devices", help="the devices present here and the CPU cores available")
    dv.add_argument("--json", action="store_true")

    tb = sub.add_parser("export-tb", help="convert a run's metrics.jsonl to TensorBoard events")
    tb.add_argument("run_dir")
    return p


# ---------------------------------------------------------------------------
# verbs


def cmd_run(a: argparse.Namespace, argv: list[str]) -> int:
    from .config import apply_overrides, read_preset_data, validate_preset

    data = read_preset_data(a.preset)
    data = apply_overrides(data, a.overrides)
    rt = (
        data.setdefault("runtime", {})
        if isinstance(data.get("runtime", {}), dict)
        else data["runtime"]
    )
    for key, val in (
        ("device", a.device),
        ("precision", a.precision),
        ("nproc", a.nproc),
        ("nnodes", a.nnodes),
        ("node_rank", a.node_rank),
        ("rdzv_endpoint", a.rdzv_endpoint),
    ):
        if val is not None:
            rt[key] = val
    if a.name is not None:
        data["name"] = a.name
    preset = validate_preset(data, a.preset)
    _check_data_paths(preset)
    from .train import prepare_run

    run_dir = prepare_run(preset, a.results_dir, a.name, ["n2n-core", *argv])
    return _launch(run_dir, preset, resume=False)


def _check_data_paths(preset) -> None:
    """Fail before creating a run folder when a data path does not exist."""
    for key in ("train", "val"):
        spec = getattr(preset.data, key)
        if not spec or spec.startswith("builtin:"):
            continue
        path = (
            spec.split(":", 1)[1] if spec.split(":", 1)[0] in ("pairs", "noisy", "clean") else spec
        )
        if not Path(path).expanduser().exists():
            raise UserError(f"data.{key}: {spec}: path not found")


def _launch(run_dir: Path, preset, resume: bool) -> int:
    rt = preset.runtime
    if rt.nproc * rt.nnodes <= 1:
        from .train import train_worker

        try:
            status = train_worker(run_dir, resume=resume)
        except UserError:
            if not resume:
                _discard_if_empty(run_dir)
            raise
        return _report(run_dir, status)
    return _launch_torchrun(run_dir, preset, resume)


def _discard_if_empty(run_dir: Path) -> None:
    """A run that failed before its first step leaves nothing worth keeping."""
    from .records import TrainRecord, ValRecord, read_metrics

    recs = read_metrics(run_dir / "metrics.jsonl")
    if not any(isinstance(r, TrainRecord | ValRecord) for r in recs):
        shutil.rmtree(run_dir, ignore_errors=True)


def _launch_torchrun(run_dir: Path, preset, resume: bool) -> int:
    import signal

    from .runinfo import read_run_info, update_run_info

    rt = preset.runtime
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={rt.nproc}"]
    if rt.nnodes > 1:
        if not rt.rdzv_endpoint:
            raise UserError("runtime.rdzv_endpoint: needed for nnodes > 1 (HOST:PORT of node 0)")
        cmd += [
            f"--nnodes={rt.nnodes}",
            f"--node-rank={rt.node_rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rt.rdzv_endpoint}",
            f"--rdzv-id={run_dir.name}",
        ]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", "n2n_core.worker", str(run_dir)] + (["--resume"] if resume else [])
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // rt.nproc)))
    # The ranks get SIGINT/SIGTERM from the process group themselves; this
    # parent only waits for them so it can record how they ended.
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    info = read_run_info(run_dir)
    status = (info and info.status) or "failed"
    if status == "running":
        # Rank 0 records how a run ended; on the other nodes of a multi-node run
        # this launcher is the only one left to say it.
        status = "finished" if proc.returncode == 0 else "failed"
        update_run_info(run_dir, status=status, exit_code=proc.returncode, ended=time.time())
    if proc.returncode == 2 and status == "failed":
        raise UserError(f"{run_dir}: run failed, see {run_dir / 'log.txt'}")
    return _report(run_dir, status)


def _report(run_dir: Path, status: str) -> int:
    final = run_dir / "snapshots" / "final.safetensors"
    samples = (
        sorted((run_dir / "samples").glob("*.png"), key=lambda p: p.stat().st_mtime)
        if (run_dir / "samples").is_dir()
        else []
    )
    print(f"run folder:     {run_dir}")
    if final.exists():
        print(f"final snapshot: {final}")
    if samples:
        print(f"denoised sample: {samples[-1]}")
    if status == "stopped":
        print(f"stopped; continue with: n2n-core resume {run_dir}")
        return EXIT_STOPPED
    if status != "finished":
        print(f"run {status}; see {run_dir / 'log.txt'}", file=sys.stderr)
        return 1
    return 0


def cmd_resume(a: argparse.Namespace) -> int:
    from .config import load_preset
    from .runinfo import read_run_info, update_run_info
    from .runs import resolve_run_dir

    run_dir = resolve_run_dir(a.run_dir)
    if not (run_dir / "preset.yaml").exists():
        raise UserError(f"{run_dir / 'preset.yaml'}: missing; cannot resume this run")
    preset = load_preset(run_dir / "preset.yaml")
    info = read_run_info(run_dir)
    if (
        info is not None
        and info.status == "finished"
        and (run_dir / "snapshots" / "final.safetensors").exists()
    ):
        raise UserError(f"{run_dir}: run already finished; nothing to resume")
    update_run_info(run_dir, status="running", pid=os.getpid(), ended=None, exit_code=None)
    return _launch(run_dir, preset, resume=True)


def _val_noise(name: str | None, snap_meta: dict):
    from .noise import noise_from_name

    kind = name or snap_meta.get("noise") or "gaussian"
    if kind == "none" and not name:
        # Trained on the user's own noisy data: no synthetic noise is known, so
        # clean images are scored at the reference's Gaussian sigma 25.
        kind = "gaussian"
    if kind == "bernoulli_spectral":
        raise UserError("--noise bernoulli_spectral: validate an MRI snapshot without --noise")
    preset_noise = (snap_meta.get("preset") or {}).get("noise") or {}
    params = {}
    if preset_noise.get("type") == kind:
        params = {k: v for k, v in preset_noise.items() if k.startswith("val_")}
    return noise_from_name(kind, **params)


def _print_val(res, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(res.to_json()))
    else:
        print(
            f"{what}: PSNR {res.psnr:.2f} dB on {res.images} image(s) "
            f"({res.noise}, seed {res.seed}); noisy input {res.input_psnr:.2f} dB"
        )


def cmd_validate(a: argparse.Namespace) -> int:
    from .data.sources import open_val
    from .device import resolve_device
    from .evaluate import torch_runner, validate
    from .snapshots import load_network

    device = resolve_device(a.device)
    net, snap = load_network(a.snapshot, device)
    if snap.meta.get("task") == "mri":
        from .mri.evaluate import validate_mri_snapshot

        res = validate_mri_snapshot(net, snap, a.dataset_dir, seed=a.seed, device=device)
    else:
        noise = _val_noise(a.noise, snap.meta)
        images = open_val(a.dataset_dir, snap.in_channels)
        samples = Path(a.samples_dir) if a.samples_dir else None
        if samples:
            samples.mkdir(parents=True, exist_ok=True)
        res = validate(
            torch_runner(net, device), images, noise, a.seed, samples, samples and len(images) or 0
        )
    _print_val(res, a.json, str(a.snapshot))
    return 0


def image_jobs(image: str, out: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file -> a file, a folder -> the same names in the out folder."""
    from .data.images import list_images

    src, dst = Path(image), Path(out)
    if not src.exists():
        raise UserError(f"{src}: image not found")
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise UserError(f"{src}: no images found in folder")
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: --out must be a folder when --image is a folder")
        dst.mkdir(parents=True, exist_ok=True)
        return [
            (f, dst / (f.stem + ".png" if f.suffix.lower() in (".gif",) else f.name)) for f in files
        ]
    if dst.is_dir():
        return [(src, dst / src.name)]
    if not dst.parent.exists():
        raise UserError(f"{dst.parent}: output folder not found")
    return [(src, dst)]


def cmd_infer(a: argparse.Namespace) -> int:
    from .infer import denoise_files, make_runner_for_snapshot

    jobs = image_jobs(a.image, a.out)
    runner, channels = make_runner_for_snapshot(a.snapshot, a.device, a.engine)
    for src, dst in denoise_files(runner, jobs, channels, tile=a.tile):
        print(f"{src} -> {dst}")
    return 0


def cmd_dataset(a: argparse.Namespace) -> int:
    if a.dataset_cmd == "build":
        from .data.packed import build_packed

        info = build_packed(a.src, a.out, a.channels)
        print(f"{info['out']}: {info['images']} images, {info['bytes'] / 1e6:.1f} MB")
        return 0
    from .mri.dataset import build_mri_dataset

    info = build_mri_dataset(a.src, a.out)
    print(json.dumps(info) if isinstance(info, dict) else info)
    return 0


def cmd_runs(a: argparse.Namespace) -> int:
    from .runs import list_runs

    runs = list_runs(a.results_dir)
    if a.json:
        print(json.dumps({"results_dir": str(a.results_dir), "runs": [r.to_json() for r in runs]}))
        return 0
    from .report import runs_table

    runs_table(runs, a.results_dir)
    return 0


def cmd_replay(a: argparse.Namespace) -> int:
    from .report import replay

    return replay(a.run_dir, a.speed)


def cmd_bench(a: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(as_json=a.json, quick=a.quick)


def cmd_freeze(a: argparse.Namespace) -> int:
    from .export import freeze

    out = freeze(a.snapshot, a.out)
    print(f"frozen model: {out}")
    return 0


def cmd_validate_frozen(a: argparse.Namespace) -> int:
    from .export import validate_frozen

    res = validate_frozen(a.model, a.dataset_dir, noise=a.noise, seed=a.seed)
    _print_val(res, a.json, str(a.model))
    return 0


def cmd_infer_frozen(a: argparse.Namespace) -> int:
    from .export import onnx_runner
    from .infer import denoise_files

    jobs = image_jobs(a.image, a.out)
    runner, channels = onnx_runner(a.model)
    for src, dst in denoise_files(runner, jobs, channels, tile=a.tile):
        print(f"{src} -> {dst}")
    return 0


def cmd_devices(a: argparse.Namespace) -> int:
    from .device import available_devices, cpu_cores

    devices, cores = available_devices(), cpu_cores()
    if a.json:
        print(json.dumps({"devices": devices, "cpu_cores": cores}))
    else:
        print(f"devices: {', '.join(devices)} (auto picks {devices[0]}); CPU cores: {cores}")
    return 0


def cmd_export_tb(a: argparse.Namespace) -> int:
    from .tensorboard import export_run

    out = export_run(a.run_dir)
    print(f"TensorBoard events: {out}")
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
        "devices": lambda: cmd_devices(a),
    }
    return table[a.cmd]()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("N2N_DEBUG") == "1"
    try:
        a = build_parser().parse_args(argv)
        code = dispatch(a, argv)
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        code = 2
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
