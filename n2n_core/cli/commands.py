"""The commands of ``n2n-core``: each parses nothing, calls one function of its concept, prints.

Every user error surfaces here as one ``error: ...`` line on stderr and exit
status 2 (``main``); a traceback only with ``N2N_DEBUG=1``. ``--json`` prints
exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from n2n_core.cli.parser import DEFAULT_RESULTS
from n2n_core.data.fetch import CATALOGUE, fetch_hint
from n2n_core.errors import UserError, printable
from n2n_core.runs.layout import RunPaths

# ---------------------------------------------------------------------------
# verbs


def cmd_run(a: argparse.Namespace, argv: list[str]) -> int:
    from n2n_core.config.catalogue import find_preset
    from n2n_core.config.loader import read_preset_data
    from n2n_core.config.overrides import apply_overrides, set_key
    from n2n_core.config.schema import check_data_paths, check_name, validate_preset

    if a.name is not None:
        check_name(a.name, "--name")
    preset_file = find_preset(a.preset, a.presets_dir)
    data = read_preset_data(preset_file)
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
    preset = validate_preset(data, str(preset_file))
    check_data_paths(preset, fetch_hint)
    from n2n_core.training.launch import start_run

    return start_run(preset, a.results_dir, a.name, ["n2n-core", *argv])


def cmd_rerun(a: argparse.Namespace, argv: list[str]) -> int:
    from n2n_core.training.launch import rerun

    return rerun(a.run_dir, a.overrides, a.results_dir, ["n2n-core", *argv])


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
    from n2n_core.engine.device import compute_device
    from n2n_core.engine.noise import validation_noise
    from n2n_core.engine.snapshots import load_network
    from n2n_core.evaluation.protocol import torch_runner, validate

    device = compute_device(a.device, a.math)
    net, snap = load_network(a.snapshot, device)
    if snap.meta.get("task") == "mri":
        from n2n_core.tasks.mri.validation import validate_mri_snapshot

        res = validate_mri_snapshot(net, snap, a.dataset_dir, seed=a.seed, device=device)
    else:
        noise = validation_noise(a.noise, snap.meta, str(a.snapshot))
        images = open_val(a.dataset_dir, snap.in_channels)
        samples = Path(a.samples_dir) if a.samples_dir else None
        if samples:
            from n2n_core.files.output import check_output, make_output_dir

            # Strips are named after the images: in the data set they would replace them.
            check_output(samples, "--samples-dir", input_folders=(a.dataset_dir,), folder=True)
            make_output_dir(samples, "--samples-dir")
        res = validate(
            torch_runner(net, device), images, noise, a.seed, samples, samples and len(images) or 0
        )
    _print_val(res, a.json, str(a.snapshot))
    return 0


def cmd_infer(a: argparse.Namespace) -> int:
    from n2n_core.data.images import image_jobs
    from n2n_core.pretrained import DEFAULT_MODEL, PREFIX, resolve_snapshot

    snapshot = a.snapshot
    if snapshot is None:
        snapshot = PREFIX + DEFAULT_MODEL
        print(f"note: no --snapshot: denoising with {snapshot}", file=sys.stderr, flush=True)
    # Checked before torch loads: a wrong --out is an answer in a fraction of a second.
    jobs = image_jobs(a.image, a.out, str(resolve_snapshot(snapshot)))
    from n2n_core.evaluation.infer import denoise_files, make_runner_for_snapshot

    runner, channels = make_runner_for_snapshot(snapshot, a.device, a.engine, a.math)
    for src, dst in denoise_files(runner, jobs, channels, tile=a.tile):
        print(f"{printable(str(src))} -> {printable(str(dst))}")
    return 0


def cmd_dataset(a: argparse.Namespace) -> int:
    from n2n_core.files.output import check_output

    if a.dataset_cmd == "fetch":
        from n2n_core.cli.views import download_bar
        from n2n_core.data.fetch import fetch_dataset

        keep = (a.archive,) if a.archive else ()
        check_output(a.out, "the data set folder", inputs=keep, folder=True)

        with download_bar() as progress:
            fetch_dataset(
                CATALOGUE[a.name],
                a.out,
                a.sha256,
                a.archive,
                progress,
                say=lambda msg: print(printable(msg), flush=True),
                **({"max_bytes": a.max_bytes} if a.max_bytes else {}),
            )
        return 0
    if a.dataset_cmd == "build":
        from n2n_core.data.packed import build_packed

        check_output(a.out, "the packed data set", input_folders=(a.src,))
        info = build_packed(a.src, a.out, a.channels)
        print(
            f"{printable(str(info['out']))}: {info['images']} images, {info['bytes'] / 1e6:.1f} MB"
        )
        return 0
    from n2n_core.data.mri.dataset import build_mri_dataset

    check_output(a.out, "the MRI slices", input_folders=(a.src,), folder=True)
    info = build_mri_dataset(a.src, a.out)
    print(json.dumps(info) if isinstance(info, dict) else printable(str(info)))
    return 0


def cmd_presets(a: argparse.Namespace) -> int:
    from n2n_core.config.catalogue import builtin_dir, list_presets, local_dir
    from n2n_core.config.loader import read_preset_data
    from n2n_core.config.schema import validate_preset

    local = local_dir(a.presets_dir)
    rows = []
    for entry in list_presets(local):
        row = entry.to_json()
        try:
            preset = validate_preset(read_preset_data(entry.path), str(entry.path))
        except UserError as e:
            row.update(error=str(e))
        else:
            row.update(
                task=preset.task,
                noise=preset.noise.type,
                steps=preset.train.steps,
                description=" ".join(preset.description.split()),
            )
        rows.append(row)
    folders = {"builtin_dir": str(builtin_dir()), "local_dir": str(local)}
    if a.json:
        print(json.dumps({**folders, "presets": rows}))
        return 0
    from n2n_core.cli.views import presets_table

    presets_table(rows, **folders)
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    from n2n_core.pretrained import list_models

    models = list_models()
    if a.json:
        print(json.dumps({"models": [m.to_json() for m in models]}))
        return 0
    from n2n_core.cli.views import models_table

    models_table(models)
    return 0


def cmd_runs(a: argparse.Namespace) -> int:
    from n2n_core.runs.query import RunQuery
    from n2n_core.runs.summary import list_runs

    query = RunQuery.from_flags(a.tag, a.where)
    query.check_keys()
    results = Path(a.results_dir)
    # The default folder not made yet is "no runs yet"; a folder the user named that is
    # not there is a typo, said as such (not an empty table that looks like lost runs).
    if a.results_dir != DEFAULT_RESULTS and not results.is_dir():
        what = "is not a folder" if results.exists() else "no such folder"
        raise UserError(f"--results-dir {a.results_dir}: {what}")
    runs = [
        r.at_level(a.eval_level) for r in list_runs(a.results_dir) if query.matches(r.path, r.info)
    ]
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
    from n2n_core.files.output import check_output
    from n2n_core.pretrained import resolve_snapshot

    check_output(a.out, "the ONNX model", inputs=(resolve_snapshot(a.snapshot),))
    out = freeze(a.snapshot, a.out)
    print(f"frozen model: {printable(str(out))}")
    return 0


def cmd_validate_frozen(a: argparse.Namespace) -> int:
    from n2n_core.evaluation.onnx import validate_frozen

    res = validate_frozen(a.model, a.dataset_dir, noise=a.noise, seed=a.seed)
    _print_val(res, a.json, str(a.model))
    return 0


def cmd_infer_frozen(a: argparse.Namespace) -> int:
    from n2n_core.data.images import image_jobs
    from n2n_core.evaluation.infer import denoise_files
    from n2n_core.evaluation.onnx import onnx_runner

    jobs = image_jobs(a.image, a.out, a.model)
    runner, channels = onnx_runner(a.model)
    for src, dst in denoise_files(runner, jobs, channels, tile=a.tile):
        print(f"{printable(str(src))} -> {printable(str(dst))}")
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
    from n2n_core.runs.tensorboard import write_tensorboard_events

    out = write_tensorboard_events(a.run_dir)
    print(f"TensorBoard events: {printable(str(out))}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from n2n_core.cli.views import matrix_table, progress_on_stderr
    from n2n_core.engine.device import compute_device
    from n2n_core.evaluation.matrix import parse_levels, plan, resolve_snapshots, run_matrix, store

    run_dir, snapshots = resolve_snapshots(a.target, a.all_snapshots)
    baselines = [b.strip() for b in a.baselines.split(",") if b.strip()]
    p = plan(snapshots, a.dataset_dirs, a.noise, parse_levels(a.levels), baselines, a.max_images)
    device = compute_device(a.device, a.math)
    with progress_on_stderr(p.total_images(), "evaluate") as tick:
        m = run_matrix(p, device, a.seed, tick)
    if run_dir is not None and not store(m, run_dir):
        print(
            f"note: {printable(str(run_dir))} is still training; results not stored in it",
            file=sys.stderr,
        )
    if a.json:
        print(json.dumps(m.to_json()))
    else:
        matrix_table(m)
    return 0


def _run_preset(path: str) -> dict:
    from n2n_core.config.loader import read_preset_data
    from n2n_core.runs.folders import resolve_run_dir

    return read_preset_data(RunPaths(resolve_run_dir(path)).preset)


def cmd_diff(a: argparse.Namespace) -> int:
    from n2n_core.config.diff import ABSENT, preset_diff, show_value
    from n2n_core.runs.info import read_run_info
    from n2n_core.runs.provenance import provenance_diff

    rows = preset_diff(_run_preset(a.run_a), _run_preset(a.run_b))
    infos = [read_run_info(r) for r in (a.run_a, a.run_b)]
    prov = provenance_diff(*(i.provenance if i is not None else None for i in infos))

    def listed(rows: list) -> list[dict]:
        return [
            {"key": k, "a": None if va is ABSENT else va, "b": None if vb is ABSENT else vb}
            for k, va, vb in rows
        ]

    if a.json:
        out = {"a": a.run_a, "b": a.run_b, "differ": listed(rows), "provenance": listed(prov)}
        print(json.dumps(out))
        return 0
    if not rows:
        print("no preset keys differ")
    for key, va, vb in rows:
        print(f"{printable(key)}: {printable(show_value(va))} -> {printable(show_value(vb))}")
    # What produced each run, below what it was asked to do (runs/provenance.py).
    print("provenance:" if prov else "provenance: no differences")
    for key, va, vb in prov:
        print(f"  {printable(key)}: {printable(show_value(va))} -> {printable(show_value(vb))}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from n2n_core.files.output import check_output
    from n2n_core.runs.export import markdown, summaries, write_csv, write_plot
    from n2n_core.sweeps.view import expand_sweeps

    run_dirs, searches = expand_sweeps(a.run_dirs)  # a sweep folder: its points, its search
    dirs, runs = summaries(run_dirs)
    for path, what in ((a.csv, "the CSV file"), (a.plot, "the plot")):
        if path:  # refused before writing anything; never into a run it reads
            check_output(path, what, input_folders=tuple(dirs))
    if a.csv:
        csv = printable(str(write_csv(dirs, a.csv)))
        print(f"CSV: {csv}", file=sys.stderr if a.markdown else sys.stdout)
    if a.plot:
        plot = printable(str(write_plot(dirs, a.plot, a.x)))
        print(f"plot: {plot}", file=sys.stderr if a.markdown else sys.stdout)
    if a.markdown or not (a.csv or a.plot):
        sys.stdout.write(markdown([r.at_level(a.eval_level) for r in runs]) + searches)
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
    from n2n_core.runs.folders import resolve_run_dir
    from n2n_core.runs.info import retag_run

    tags = retag_run(resolve_run_dir(a.run_dir), a.changes)
    shown = printable(" ".join(tags)) if tags else "(none)"  # run.json's tags are data
    print(f"{printable(a.run_dir)}: tags {shown}")
    return 0


def cmd_note(a: argparse.Namespace) -> int:
    from n2n_core.runs.folders import resolve_run_dir
    from n2n_core.runs.info import set_run_note

    note = set_run_note(resolve_run_dir(a.run_dir), " ".join(a.text))
    print(f"{printable(a.run_dir)}: note {'cleared' if not note else 'set'}")
    return 0
