"""Make a built-in model, ``n2n_core/pretrained/NAME.safetensors``, from a finished run.

    n2n-core run photo --name photo          # the recipe, seed 0 (about 50 min on 2 cores)
    python benchmarks/make_builtin_models.py results/00000-photo --name photo \\
        --commit "$(git rev-parse HEAD)" --score kodak24=datasets/kodak

Reads the run's ``snapshots/final.safetensors``, stores the network weights as
fp16 with the snapshot's metadata, and records the preset, the steps, the code
commit the run was trained from (``--commit``: a run folder does not record it),
the command that retrains it, and the PSNR / colour shift measured from the fp16
weights on ``builtin:photos-holdout`` -- what ``tests/unit/pretrained`` checks
again -- and on each ``--score LABEL=FOLDER``. Prints the record as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from n2n_core import formatting as fmt
from n2n_core.errors import UserError
from n2n_core.pretrained import models_dir
from n2n_core.pretrained.pack import pack_run


def _score(text: str) -> tuple[str, str]:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"expected LABEL=FOLDER, got {text!r}")
    return label, folder


def _differs_from_builtin(run_dir: str, preset: str) -> list[str]:
    """The keys (name and description aside) in which the run's resolved preset differs
    from the one ``n2n-core run PRESET`` would train now."""
    from n2n_core.config.catalogue import find_preset
    from n2n_core.config.diff import preset_diff
    from n2n_core.config.preset import load_preset
    from n2n_core.runs.layout import RunPaths

    run = load_preset(RunPaths(run_dir).preset).model_dump(mode="json")
    now = load_preset(find_preset(preset)).model_dump(mode="json")
    for d in (run, now):
        d.pop("name"), d.pop("description")
    return [key for key, _, _ in preset_diff(run, now)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument("--name", required=True, help="the model's name: builtin:NAME")
    p.add_argument("--commit", required=True, help="the code commit the run was trained from")
    p.add_argument(
        "--preset",
        help="the preset the run trained, by name (default: the run's preset name; a run "
        "started with --name has that name instead)",
    )
    p.add_argument(
        "--retrain", help="the command that retrains it (default: n2n-core run PRESET --name NAME)"
    )
    p.add_argument("--score", type=_score, action="append", default=[], metavar="LABEL=FOLDER")
    p.add_argument("--out", help="default: n2n_core/pretrained/NAME.safetensors")
    a = p.parse_args(argv)
    out = Path(a.out) if a.out else models_dir() / f"{a.name}.safetensors"
    try:
        from n2n_core.config.loader import read_preset_data
        from n2n_core.runs.layout import RunPaths

        preset = a.preset or str(read_preset_data(RunPaths(a.run_dir).preset).get("name"))
        differ = _differs_from_builtin(a.run_dir, preset)
        if differ:
            print(f"note: the run's preset differs from {preset} in {', '.join(differ)}")
        retrain = a.retrain or f"n2n-core run {preset} --name {a.name}"
        record = pack_run(a.run_dir, a.name, out, preset, a.commit, retrain, tuple(a.score))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(record, indent=2))
    for s in record["scores"]:
        shift = fmt.colour_shift(s["colour_shift"], s["colour_shift_worst"])
        print(f"{out.name}: {s['dataset']}: PSNR {fmt.psnr(s['psnr'])} dB, colour shift {shift}")
    print(f"written: {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
