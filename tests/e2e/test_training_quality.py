"""Training that generalises: true colours on unseen palettes, crops the U-Net can learn from.

A model trained on a few warm photos must not pull other colours towards them.

The training crops (rocket, tissue, motorcycle, fundus) are reds, browns and
greys; the test pictures are saturated greens and blues the model never saw.
With channel permutation and flips (``data.augment``) the denoised pictures
keep their mean colour within a few levels; without, the same short training
bends them tens of levels towards the training palette.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from n2n_core.cli import main as cli
from n2n_core.config.preset import load_preset
from n2n_core.data.builtin import skimage_data_dir
from n2n_core.data.images import load_image, save_image
from n2n_core.runs.folders import prepare_run
from n2n_core.training.loop import train_worker

# Saturated mean colours (R, G, B), kept clear of 0 and 255 so that clipping the
# output to uint8 adds no bias of its own; a grass texture gives them structure.
COLOURS = {"green": (40, 160, 60), "blue": (40, 80, 190)}


@pytest.fixture(scope="module")
def saturated_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("saturated")
    grass = load_image(skimage_data_dir() / "grass.png")[:96, :96, 0].astype(np.float64)
    texture = 0.3 * (grass - grass.mean())
    for name, colour in COLOURS.items():
        img = np.stack([texture + c for c in colour], axis=-1)
        save_image(d / f"{name}.png", np.clip(img + 0.5, 0, 255).astype(np.uint8))
    return d


def _shift_after_training(make_preset, tmp_path, saturated_dir, augment: bool, capsys) -> dict:
    p = make_preset(
        name=f"colour-{'aug' if augment else 'plain'}",
        noise={"type": "gaussian", "train_sigma": [0, 50], "val_sigma": 25},
        data__augment={"flips": augment, "channels": augment},
        train__steps=300,
        train__batch=4,
        train__crop=32,
        train__lr=0.0005,
        train__rampdown=0.5,
        train__val_every=0,
        train__snapshot_every=0,
        train__log_every=100,
        # as the presets train: bf16 where native, both cores (half the time of fp32 on one)
        runtime__precision="auto",
        runtime__threads=2,
    )
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    assert train_worker(run_dir) == "finished"
    snap = str(run_dir / "snapshots" / "final.safetensors")
    capsys.readouterr()
    assert (
        cli.main(["validate", "--snapshot", snap, "--dataset-dir", str(saturated_dir), "--json"])
        == 0
    )
    return json.loads(capsys.readouterr().out)


def test_augmented_training_keeps_saturated_colours(make_preset, tmp_path, saturated_dir, capsys):
    aug = _shift_after_training(make_preset, tmp_path, saturated_dir, True, capsys)
    plain = _shift_after_training(make_preset, tmp_path / "b", saturated_dir, False, capsys)
    # 300 steps is far from converged (the quickstart reaches < 1 level on photos):
    # measured 3.3 mean / 8.1 worst levels with augmentation, 44 / 69 without (fp32);
    # 3.9 / 9.0 and 43 / 69 in bf16; 4.9 / -12.6 in bf16 on an Intel CPU with AMX.
    # The bounds leave room for such machines and still sit far below the 40+ / 65+
    # levels of a training whose augmentation stopped working.
    assert aug["psnr"] > aug["input_psnr"] + 3
    assert aug["colour_shift"] <= 8.0 and abs(aug["colour_shift_worst"]) <= 20.0, aug
    # The same training without augmentation is what pulls greens and blues off.
    assert plain["colour_shift"] > 3 * aug["colour_shift"], (plain, aug)
