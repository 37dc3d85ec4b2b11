"""The MRI task: k-space masks, fspec, the roll shift, NIfTI slicing, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from n2n_core.data.mri.dataset import (
    REFERENCE_TRAIN,
    REFERENCE_VAL,
    build_mri_dataset,
    slice_volume,
    split_subjects,
    subject_of,
    write_phantoms,
)
from n2n_core.data.mri.sources import open_mri_slices
from n2n_core.errors import UserError
from n2n_core.tasks.mri import kspace as spectral
from n2n_core.tasks.mri import lr_schedule as schedule

nib = pytest.importorskip("nibabel")

SMALL_SHAPE = (24, 22, 130)  # depth covers the reference slice range 25..124


# ---------------------------------------------------------------------------
# masks


def test_keep_probability_profile():
    p = spectral.keep_probability(255, 255, 0.025)
    assert p[0, 0] == 1.0
    assert float(p[0, 127]) == pytest.approx(0.025, rel=1e-5)  # middle of an edge
    assert float(p[127, 0]) == pytest.approx(0.025, rel=1e-5)
    assert torch.equal(p, spectral.hermitian_mirror(p))
    # The reference: "256x256 avg = 0.10477" (its printed mean of the same map).
    assert 0.100 < float(p.mean()) < 0.108


@pytest.mark.parametrize("size", [(31, 31), (32, 32), (15, 20)])
def test_mask_is_hermitian_symmetric(size):
    prob = spectral.keep_probability(*size, 0.025)
    keep = spectral.bernoulli_mask(prob, 8, torch.Generator().manual_seed(1))
    assert torch.equal(keep, spectral.hermitian_mirror(keep))
    # A real image seen through a symmetric mask stays real.
    img = torch.rand(8, *size, dtype=torch.float64)
    zf, _ = spectral.undersample(torch.fft.fft2(img), keep, prob.double())
    assert torch.allclose(
        torch.fft.ifft2(torch.fft.fft2(zf)).imag, torch.zeros_like(zf), atol=1e-12
    )
    assert torch.fft.ifft2(torch.fft.fft2(img) * keep).imag.abs().max() < 1e-12


def test_mask_statistics_match_keep_probability():
    prob = spectral.keep_probability(33, 33, 0.025)
    keep = spectral.bernoulli_mask(prob, 3000, torch.Generator().manual_seed(0)).float()
    rate = keep.mean(0)
    assert float(rate.mean()) == pytest.approx(float(prob.mean()), abs=0.003)
    assert bool(keep[:, 0, 0].all())  # DC is always measured
    # Per radius band, the kept fraction follows p(r).
    fy = spectral.signed_frequencies(33)
    r = torch.sqrt(fy[:, None] ** 2 + fy[None, :] ** 2)
    for lo, hi in [(0.5, 4), (4, 8), (8, 12), (12, 17), (17, 24)]:
        band = (r >= lo) & (r < hi)
        assert float(rate[band].mean()) == pytest.approx(float(prob[band].mean()), abs=0.01)


def test_zero_filled_input_is_unbiased():
    img = torch.rand(15, 15, dtype=torch.float64) - 0.5
    prob = spectral.keep_probability(15, 15, 0.3).double()
    keep = spectral.bernoulli_mask(prob, 4000, torch.Generator().manual_seed(3))
    zf, kept = spectral.undersample(torch.fft.fft2(img).expand(4000, 15, 15), keep, prob)
    assert torch.allclose(zf.mean(0), img, atol=0.03)
    assert torch.equal(kept[~keep], torch.zeros_like(kept[~keep]))


# ---------------------------------------------------------------------------
# fspec and the roll


def test_fspec_keeps_measured_frequencies_exactly():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 31, 31, generator=g, dtype=torch.float64) - 0.5
    prob = spectral.keep_probability(31, 31, 0.025).double()
    keep = spectral.bernoulli_mask(prob, 3, g)
    _, kept = spectral.undersample(torch.fft.fft2(clean), keep, prob)
    pred = (torch.rand(3, 31, 31, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    out = spectral.data_consistency(pred, kept, keep)
    out_spec = torch.fft.fft2(out)
    assert torch.allclose(out_spec[keep], kept[keep], atol=1e-10, rtol=0)
    assert torch.allclose(out_spec[~keep], torch.fft.fft2(pred)[~keep], atol=1e-10, rtol=0)
    out.sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    # With every frequency measured, fspec returns the truth whatever the network said.
    everything = torch.ones_like(keep)
    full = spectral.data_consistency(pred.detach(), torch.fft.fft2(clean), everything)
    assert torch.allclose(full, clean, atol=1e-12)


def test_fspec_runs_on_cpu_for_a_device_without_complex_support():
    # The meta device has no complex FFT results to read: it must fall back, not drop fspec.
    assert spectral.spectral_device("meta") == torch.device("cpu")
    assert spectral.spectral_device("cpu") == torch.device("cpu")
    pred = torch.rand(2, 9, 9)
    keep = torch.ones(2, 9, 9, dtype=torch.bool)
    kept = torch.fft.fft2(torch.zeros(2, 9, 9))
    out = spectral.fspec(pred.to(torch.bfloat16), kept, keep)
    assert out.dtype == torch.float32 and torch.allclose(out, torch.zeros(2, 9, 9), atol=1e-6)


def test_roll_with_phase_matches_the_rolled_image_spectrum():
    img = torch.rand(3, 17, 16, dtype=torch.float64)
    dy, dx = torch.tensor([0, 5, -7]), torch.tensor([3, -16, 8])
    rolled, spec = spectral.roll_with_phase(img, torch.fft.fft2(img), dy, dx)
    for i in range(3):
        expect = torch.roll(img[i], (int(dy[i]), int(dx[i])), dims=(0, 1))
        assert torch.equal(rolled[i], expect)
        assert torch.allclose(spec[i], torch.fft.fft2(expect).to(spec.dtype), atol=1e-4)


# ---------------------------------------------------------------------------
# schedule


def test_reference_schedule():
    steps, epochs = 3000, 300
    lr = [schedule.mri_learning_rate(s, steps, 1e-3, epochs, 10, 30) for s in range(steps)]
    assert lr[0] == pytest.approx(1e-3 * math.exp(-5.0))
    assert lr[100] == pytest.approx(1e-3)  # epoch 10: warm-up over
    assert lr[2690] == pytest.approx(1e-3)  # epoch 269: before the ramp-down
    assert lr[-1] == pytest.approx(1e-3 * math.exp(-(14.5**2) / 30))
    assert lr[2700] == lr[2709]  # constant within an epoch
    b1 = [schedule.mri_adam_beta1(s, steps, epochs, 30, 0.9, 0.5) for s in (0, 2699, 2999)]
    assert b1[0] == b1[1] == pytest.approx(0.9)
    assert 0.5 < b1[2] < 0.51


# ---------------------------------------------------------------------------
# NIfTI -> slices


def _save(path: Path, vol: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))


def test_slicing_of_a_volume_the_test_writes(tmp_path):
    vol = np.zeros((20, 10, 140), np.float32)
    for z in range(140):
        vol[:, :, z] = z  # slice z has value z everywhere; the max (139) normalises
    vol[:, :, 60] = 0.0  # an empty slice inside the range is dropped
    vol[3, 4, 50] = 278.0  # the volume max: normalise by it, not per slice
    _save(tmp_path / "IXI001-Guys-0001-T1.nii", vol)
    from n2n_core.data.mri.dataset import read_volume

    slices, zs = slice_volume(read_volume(tmp_path / "IXI001-Guys-0001-T1.nii"), 32)
    assert zs == [z for z in range(25, 125) if z != 60]
    assert slices.shape == (99, 32, 32) and slices.dtype == np.uint8
    s = slices[zs.index(100)]
    # Centred zero padding: 20 x 10 -> rows 6..25, columns 11..20.
    assert s[6:26, 11:21].min() == s[6:26, 11:21].max() == round(100 / 278 * 255)
    assert s[:6].max() == 0 and s[26:].max() == 0 and s[:, :11].max() == 0 and s[:, 21:].max() == 0
    assert slices[zs.index(50)][6 + 3, 11 + 4] == 255


def test_dataset_mri_splits_by_subject(tmp_path):
    src = tmp_path / "vols"
    write_phantoms(src, 5, SMALL_SHAPE, seed=1)
    # The same subjects as plain .nii must read the same.
    plain = tmp_path / "plain"
    plain.mkdir()
    first = nib.load(str(src / "phantom000-T1.nii.gz"))
    nib.save(first, str(plain / "phantom000-T1.nii"))
    info = build_mri_dataset(src, tmp_path / "out", resolution=32)
    assert info["train_subjects"] == 4 and info["val_subjects"] == 1
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    train_subj = {s for s, _ in meta["train"]["slices"]}
    val_subj = {s for s, _ in meta["val"]["slices"]}
    assert train_subj.isdisjoint(val_subj) and val_subj == {"phantom004"}
    train = open_mri_slices(str(tmp_path / "out"), "train")
    val = open_mri_slices(str(tmp_path / "out" / "val.npy"), "val")
    assert train.pixels.shape == (info["train_slices"], 32, 32)
    assert len(val) == info["val_slices"] and val.names[0].startswith("phantom004_z")
    from n2n_core.data.mri.dataset import read_volume

    a, _ = slice_volume(read_volume(plain / "phantom000-T1.nii"), 32)
    assert np.array_equal(a, train.pixels[: len(a)])


def test_reference_ixi_split_is_used_when_its_subjects_are_present():
    names = [f"IXI{i:03d}-Guys-{i:04d}" for i in range(1, 100)]
    train, val, rule = split_subjects(names)
    assert rule == "reference" and len(train) == 50 and len(val) == 10
    assert train[0] == "IXI002-Guys-0002" and val[-1] == "IXI073-Guys-0073"
    assert len(set(REFERENCE_TRAIN) | set(REFERENCE_VAL)) == 60
    assert subject_of(Path("IXI002-Guys-0828-T1.nii.gz")) == "IXI002-Guys-0828"
    _, val2, rule2 = split_subjects(names[:30])
    assert rule2 == "by-subject" and val2 == names[25:30]


def test_bad_volumes_are_errors_naming_the_file(tmp_path, capsys):
    from n2n_core.cli.main import main

    src = tmp_path / "bad"
    src.mkdir()
    _save(src / "a-T1.nii.gz", np.ones((8, 8), np.float32))
    _save(src / "b-T1.nii.gz", np.ones((8, 8, 130), np.float32))
    assert main(["dataset", "mri", "--src", str(src), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "a-T1.nii.gz" in err and "3D" in err

    (src / "a-T1.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(UserError, match="a-T1.nii.gz: cannot read NIfTI"):
        build_mri_dataset(src, tmp_path / "o")
    with pytest.raises(UserError, match="no NIfTI volumes"):
        build_mri_dataset(tmp_path / "o", tmp_path / "o2")


# ---------------------------------------------------------------------------
# the task, end to end


@pytest.fixture(scope="module")
def tiny_mri(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mri")
    write_phantoms(root / "vols", 4, SMALL_SHAPE, seed=2)
    build_mri_dataset(root / "vols", root / "data", resolution=32)
    return root / "data"


def _preset(tmp_path: Path, data: Path, **train) -> Path:
    preset = {
        "name": "mri-tiny",
        "task": "mri",
        "noise": {"type": "bernoulli_spectral", "p_at_edge": 0.025},
        "targets": "noisy",
        "data": {"train": str(data / "train.npy"), "val": str(data), "val_max_images": 6},
        "train": {"steps": 4, "batch": 2, "lr": 0.001, "val_every": 0, "log_every": 1, **train},
        "mri": {"epochs": 4, "rampup_epochs": 1, "rampdown_epochs": 1, "translate": 4},
        "runtime": {"device": "cpu", "threads": 1},
    }
    path = tmp_path / "mri.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def test_task_batches_are_deterministic_and_fspec_consistent(tmp_path, tiny_mri):
    from n2n_core.config.preset import load_preset
    from n2n_core.engine.network import UNet
    from n2n_core.tasks.mri.task import MriTask

    task = MriTask(load_preset(_preset(tmp_path, tiny_mri)), torch.device("cpu"))
    a, ta = task.make_batch(3)
    b, tb = task.make_batch(3)
    assert torch.equal(a.image, b.image) and torch.equal(ta, tb)
    assert a.image.shape == (2, 1, 31, 31) and ta.shape == (2, 1, 31, 31)
    assert not torch.equal(a.keep, task.make_batch(4)[0].keep)
    assert task.noise.name == "bernoulli_spectral" and "p_at_edge" in task.noise.describe()
    pred = task.forward(UNet(1), a)
    assert pred.shape == (2, 1, 31, 31)
    spec = torch.fft.fft2(pred[:, 0].detach().double())
    assert torch.allclose(spec[a.keep], a.kept[a.keep].to(spec.dtype), atol=1e-3)
    assert math.isfinite(float(task.loss(pred, ta, 3).detach()))


def test_run_validate_and_frozen_path_agree(tmp_path, tiny_mri, capsys):
    from n2n_core.cli.main import main
    from n2n_core.engine.snapshots import load_network
    from n2n_core.evaluation.protocol import torch_runner
    from n2n_core.tasks.mri.validation import validate_mri_frozen

    preset = _preset(tmp_path, tiny_mri, val_every=2)
    assert main(["run", str(preset), "--results-dir", str(tmp_path / "res")]) == 0
    run_dir = next((tmp_path / "res").iterdir())
    vals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in vals if r["kind"] == "val"]
    assert len(vals) == 2 and all(r["psnr"] > 0 and r["input_psnr"] > 0 for r in vals)
    assert list((run_dir / "samples").glob("*.png"))
    capsys.readouterr()

    snap = run_dir / "snapshots" / "final.safetensors"
    assert (
        main(["validate", "--snapshot", str(snap), "--dataset-dir", str(tiny_mri), "--json"]) == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["noise"] == "bernoulli_spectral" and res["images"] > 6
    # The frozen path gets a plain runner (no fspec inside) and the model's metadata.
    net, s = load_network(snap)
    frozen = validate_mri_frozen(torch_runner(net, "cpu", False), dict(s.meta), tiny_mri)
    assert frozen.psnr == pytest.approx(res["psnr"], abs=0.01)
    assert frozen.input_psnr == pytest.approx(res["input_psnr"], abs=0.01)
    # And through a real ONNX model: fspec runs outside the graph, the numbers match.
    from n2n_core.evaluation.onnx import freeze, validate_frozen

    onnx_path = freeze(snap, tmp_path / "mri.onnx")
    via_onnx = validate_frozen(onnx_path, tiny_mri)
    assert via_onnx.psnr == pytest.approx(res["psnr"], abs=0.01)
