"""Training on the user's own noisy data: pairs:DIR, noisy:DIR, clean:DIR validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from n2n_core.cli.main import main
from n2n_core.config.schema import validate_preset
from n2n_core.data.aligned import AlignedCropSampler, flip
from n2n_core.data.builtin import builtin_files
from n2n_core.data.demo import make_demo_noisy, make_demo_pairs, noisy_copy
from n2n_core.data.images import load_image, save_image
from n2n_core.data.pairs import detect_channels, find_clean_refs, find_noisy, find_pairs
from n2n_core.errors import UserError
from n2n_core.runs.records import TrainRecord, ValRecord, read_metrics
from n2n_core.tasks.neighbor import (
    NEIGHBOUR_PAIRS,
    NeighbourPrediction,
    neighbour_choice,
    neighbour_loss,
    regulariser_weight,
    subsample,
)
from n2n_core.tasks.owndata import NoisyValImage, validate_noisy_files


def _img(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def _preset(**data) -> dict:
    return {"name": "own", "data": data, "train": {"steps": 1, "crop": 64}}


# -- Neighbor2Neighbor sub-sampler and loss -----------------------------------


def test_subsample_picks_two_adjacent_pixels_of_every_cell_same_for_all_channels():
    n, c, h, w = 2, 3, 6, 8
    # Channel k holds pixel index + 1000 k, so a value says where it came from.
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w).repeat(n, c, 1, 1)
    x += 1000 * torch.arange(c, dtype=torch.float32).reshape(1, c, 1, 1)
    gen = torch.Generator().manual_seed(0)
    i1, i2 = neighbour_choice(n, h, w, gen, torch.device("cpu"))
    g1, g2 = subsample(x, i1), subsample(x, i2)
    assert g1.shape == g2.shape == (n, c, h // 2, w // 2)
    for k in range(1, c):  # the same pixel for every channel
        assert torch.equal(g1[:, k] - g1[:, 0], torch.full_like(g1[:, 0], 1000.0 * k))
    p1, p2 = g1[:, 0].long(), g2[:, 0].long()
    y1, x1, y2, x2 = p1 // w, p1 % w, p2 // w, p2 % w
    cy, cx = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
    assert torch.equal(y1 // 2, cy.expand_as(y1)) and torch.equal(x1 // 2, cx.expand_as(x1))
    assert torch.equal(y2 // 2, cy.expand_as(y2)) and torch.equal(x2 // 2, cx.expand_as(x2))
    assert torch.all((y1 - y2).abs() + (x1 - x2).abs() == 1)  # edge neighbours, never equal


def test_neighbour_pairs_are_the_eight_ordered_edge_pairs():
    pairs = {tuple(p) for p in NEIGHBOUR_PAIRS.tolist()}
    assert len(pairs) == 8
    for a, b in pairs:
        assert abs(a // 2 - b // 2) + abs(a % 2 - b % 2) == 1


def test_subsample_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        subsample(torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 1, 2, dtype=torch.long))


def test_neighbour_loss_is_mse_plus_weighted_regulariser():
    out, target, exp = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    pred = NeighbourPrediction(out, target, exp)
    assert float(neighbour_loss(pred, 0.0)) == pytest.approx(2.5)  # (1 + 4) / 2
    assert float(neighbour_loss(pred, 2.0)) == pytest.approx(2.5 + 2 * 0.5)  # (0 + 1) / 2
    assert regulariser_weight(2.0, 0.0) == 0.0
    assert regulariser_weight(2.0, 0.5) == 1.0
    assert regulariser_weight(2.0, 3.0) == 2.0


# -- aligned crops ---------------------------------------------------------------


def test_flip_codes():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    assert np.array_equal(flip(a, 0), a)
    assert np.array_equal(flip(a, 1), a[:, ::-1])
    assert np.array_equal(flip(a, 2), a[::-1])
    assert np.array_equal(flip(a, 3), a[::-1, ::-1])


def test_both_halves_get_the_same_crop_and_flip():
    a = _img(40, 50, seed=1)
    b = (a.astype(np.int16) + 1).clip(0, 255).astype(np.uint8)
    sampler = AlignedCropSampler([(a, b)], ["x"], 32)
    crops = sampler.sample(16, np.random.default_rng(0))
    assert crops.shape == (2, 16, 32, 32, 3)
    expect = (crops[0].astype(np.int16) + 1).clip(0, 255)
    assert np.array_equal(crops[1], expect)
    again = sampler.sample(16, np.random.default_rng(0))
    assert np.array_equal(crops, again)  # a pure function of the generator


def test_image_smaller_than_crop_is_an_error_naming_it():
    with pytest.raises(UserError, match="small.png: image is 20x30, smaller than train.crop 32"):
        AlignedCropSampler([(_img(30, 20),)], ["small.png"], 32)


# -- naming rules ----------------------------------------------------------------


def test_pairs_in_a_and_b_folders(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        for name in ("x.png", "y.png"):
            save_image(tmp_path / sub / name, _img(8, 8))
    pairs = find_pairs(f"pairs:{tmp_path}")
    assert [(p.name, p.a.parent.name, p.b.parent.name) for p in pairs] == [
        ("x.png", "a", "b"),
        ("y.png", "a", "b"),
    ]


def test_pairs_with_suffixes(tmp_path):
    for name in ("scene_1.png", "scene_2.png", "burst_a_1.tif", "burst_a_2.tif"):
        save_image(tmp_path / name, _img(8, 8))
    pairs = find_pairs(f"pairs:{tmp_path}")
    assert [(p.a.name, p.b.name) for p in pairs] == [
        ("burst_a_1.tif", "burst_a_2.tif"),
        ("scene_1.png", "scene_2.png"),
    ]


@pytest.mark.parametrize(
    "files, message",
    [
        (["a/x.png", "b/x.png", "a/y.png"], r"a/y.png has no partner .*b/y.png"),
        (["a/x.png", "b/x.png", "b/z.png"], r"b/z.png has no partner .*a/z.png"),
        (["a/x.png"], r"b not found"),
        (["a/x.png", "b/x.png", "loose.png"], r"loose.png lies beside a/ and b/"),
        (["s_1.png"], r"s_1.png has no partner .*s_2.png"),
        (["s_1.png", "s_2.png", "other.png"], r"other.png does not follow the naming rule"),
        ([], r"no image pairs found"),
    ],
)
def test_unmatched_pairs_are_errors_naming_the_file(tmp_path, files, message):
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        save_image(tmp_path / f, _img(8, 8))
    with pytest.raises(UserError, match=message):
        find_pairs(f"pairs:{tmp_path}")


def test_clean_refs_and_noisy_folder(tmp_path):
    for sub in ("clean", "noisy"):
        (tmp_path / sub).mkdir()
        save_image(tmp_path / sub / "k.png", _img(8, 8))
    refs = find_clean_refs(f"clean:{tmp_path}")
    assert [(r.a.parent.name, r.b.parent.name) for r in refs] == [("noisy", "clean")]
    assert [f.name for f in find_noisy(f"noisy:{tmp_path / 'clean'}")] == ["k.png"]
    with pytest.raises(UserError, match="clean/ and noisy/"):
        find_clean_refs(f"clean:{tmp_path / 'clean'}")
    with pytest.raises(UserError, match="folder not found"):
        find_noisy(f"noisy:{tmp_path / 'nope'}")


def test_channels_follow_the_files(tmp_path):
    save_image(tmp_path / "g.png", _img(8, 8, 1))
    save_image(tmp_path / "c.png", _img(8, 8, 3))
    assert detect_channels([tmp_path / "g.png"]) == 1
    assert detect_channels([tmp_path / "g.png", tmp_path / "c.png"]) == 3


# -- preset rules ---------------------------------------------------------------


def test_own_modes_default_to_no_noise_and_no_val_set():
    p = validate_preset(_preset(train="pairs:datasets/own-pairs"))
    assert p.noise.type == "none" and p.data.val is None and p.train.nb2nb_gamma == 2.0
    p = validate_preset(_preset(train="noisy:d", val="clean:v"))
    assert p.noise.type == "none" and p.data.val == "clean:v"


@pytest.mark.parametrize(
    "data, extra, message",
    [
        ({"train": "pairs:d"}, {"noise": {"type": "gaussian"}}, r"noise.type: must be none"),
        ({"train": "builtin:photos"}, {"noise": {"type": "none"}}, r"noise.type: none .*needs"),
        ({"train": "clean:d"}, {}, r"data.train: clean:d: clean:DIR holds validation"),
        ({"train": "pairs:"}, {}, r"data.train: pairs: needs a folder"),
        ({"train": "noisy:d", "val": "builtin:photos-val"}, {}, r"data.val: builtin:photos-val"),
        ({"train": "noisy:d", "val": "some/folder"}, {}, r"data.val: some/folder"),
        ({"train": "builtin:photos", "val": "clean:v"}, {}, r"data.val: clean:v needs data.train"),
        ({"train": "pairs:d"}, {"targets": "clean"}, r"targets: clean needs clean training"),
        ({"train": "noisy:d"}, {"train": {"steps": 1, "crop": 96}}, r"train.crop: 96: .*64"),
        ({"train": "noisy:d"}, {"train": {"steps": 1, "loss": "l1"}}, r"train.loss: l1"),
    ],
)
def test_preset_errors_name_the_key(data, extra, message):
    raw = {**_preset(**data), **extra}
    with pytest.raises(UserError, match=r"^p.yaml: " + message):
        validate_preset(raw, "p.yaml")


# -- validation without and with clean references ---------------------------------


def _identity(batch: np.ndarray) -> np.ndarray:
    return batch


def test_validation_without_references_writes_samples_and_no_psnr(tmp_path):
    items = [NoisyValImage("n.png", _img(20, 24))]
    assert validate_noisy_files(_identity, items, tmp_path, samples=1, tag="t-") is None
    strip = load_image(tmp_path / "t-n.png")
    assert strip.shape == (20, 48, 3)  # noisy | denoised


def test_validation_with_references_scores_the_noisy_file_itself():
    clean = _img(20, 24, seed=3)
    noisy = noisy_copy(clean, 25.0, np.random.default_rng(0))
    res = validate_noisy_files(_identity, [NoisyValImage("n.png", noisy, clean)])
    assert res is not None and res.images == 1
    # The identity "denoiser" returns the noisy file: output and input PSNR agree.
    assert res.psnr == pytest.approx(res.input_psnr)
    assert 19.0 < res.input_psnr < 23.0  # sigma 25 on the 0..255 scale


# -- end to end -----------------------------------------------------------------


def _photos(folder: Path, names: list[Path], size: int) -> list[Path]:
    """Centre crops of bundled photos, small enough for a quick CPU test."""
    folder.mkdir(parents=True)
    out = []
    for src in names:
        img = load_image(src)
        h, w = img.shape[:2]
        y, x = (h - size) // 2, (w - size) // 2
        out.append(folder / f"{src.stem}.png")
        save_image(out[-1], img[y : y + size, x : x + size])
    return out


def _write_preset(path: Path, data: dict, train: dict) -> Path:
    preset = {
        "name": "own-test",
        "data": data,
        "train": {"batch": 4, "lr": 0.001, "rampdown": 0.3, "val_every": 0, "log_every": 5} | train,
        "runtime": {"device": "cpu", "threads": 1},
    }
    path.write_text(yaml.safe_dump(preset))
    return path


def test_pairs_from_photos_train_and_improve_psnr_on_held_out_photos(tmp_path):
    train_photos = _photos(tmp_path / "photos", builtin_files("photos"), 96)
    val_photos = _photos(tmp_path / "held-out", builtin_files("photos-val"), 64)
    # Strong noise (sigma 50) so that the gain is unmistakable after only 100 small steps.
    make_demo_pairs(train_photos, tmp_path / "pairs", sigma=50, seed=1)
    make_demo_noisy(val_photos, tmp_path / "val-noisy", sigma=50, seed=2, refs=tmp_path / "refs")
    preset = _write_preset(
        tmp_path / "p.yaml",
        {"train": f"pairs:{tmp_path / 'pairs'}", "val": f"clean:{tmp_path / 'refs'}"},
        {"steps": 100, "crop": 32},
    )
    assert main(["run", str(preset), "--results-dir", str(tmp_path / "res")]) == 0
    (run,) = (tmp_path / "res").iterdir()
    vals = [r for r in read_metrics(run / "metrics.jsonl") if isinstance(r, ValRecord)]
    assert len(vals) == 1 and vals[0].images == 3
    # Measured 5.33 dB of gain (bf16, one thread, Intel Xeon with AMX): 3 leaves room for
    # other CPUs' kernels and still fails if training did not learn the pairs.
    assert vals[0].psnr > vals[0].input_psnr + 3.0, vals[0]
    assert len(list((run / "samples").glob("*.png"))) == 3


def test_single_noisy_grayscale_images_train_then_infer_on_the_folder(tmp_path):
    gray = [tmp_path / f"g{k}.png" for k in range(2)]
    for k, p in enumerate(gray):
        save_image(p, _img(70, 80, 1, seed=k))
    make_demo_noisy(gray, tmp_path / "noisy", sigma=25, channels=1)
    preset = _write_preset(
        tmp_path / "p.yaml",
        {"train": f"noisy:{tmp_path / 'noisy'}", "samples": 1},
        {"steps": 3, "crop": 64, "batch": 2, "log_every": 1},
    )
    assert main(["run", str(preset), "--results-dir", str(tmp_path / "res")]) == 0
    (run,) = (tmp_path / "res").iterdir()
    records = read_metrics(run / "metrics.jsonl")
    assert not [r for r in records if isinstance(r, ValRecord)]  # no clean image: no PSNR rows
    assert [r.step for r in records if isinstance(r, TrainRecord)] == [1, 2, 3]
    assert [p.name for p in (run / "samples").iterdir()] == ["step-00000003-g0.png"]
    out = tmp_path / "denoised"
    snap = run / "snapshots" / "final.safetensors"
    args = ["infer", "--snapshot", str(snap), "--image", str(tmp_path / "noisy"), "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["g0.png", "g1.png"]
    assert load_image(out / "g0.png", 1).shape == (70, 80, 1)


def test_run_with_misaligned_pair_exits_2_naming_both_files(tmp_path, capsys):
    for sub, shape in (("a", (40, 40)), ("b", (40, 48))):
        (tmp_path / "d" / sub).mkdir(parents=True)
        save_image(tmp_path / "d" / sub / "x.png", _img(*shape))
    preset = _write_preset(tmp_path / "p.yaml", {"train": f"pairs:{tmp_path / 'd'}"}, {"steps": 1})
    assert main(["run", str(preset), "--results-dir", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "a/x.png is 40x40" in err[-1]
    assert "b/x.png is 48x40" in err[-1]
