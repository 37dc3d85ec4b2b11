"""TensorBoard events: the live writer, export-tb, read back with TensorBoard's own reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import FIXTURES
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from n2n_core.cli.main import main
from n2n_core.data.images import save_image
from n2n_core.errors import UserError
from n2n_core.runs.tensorboard import TBWriter, write_tensorboard_events


def _read(log_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_writer_round_trip(tmp_path):
    tb = TBWriter(tmp_path / "tb")
    tb.train(10, 0.5, 1e-3, 12.5)
    tb.train(20, 0.25, 5e-4, 11.0)
    tb.val(20, 28.5, 20.25)
    strip = np.random.default_rng(0).integers(0, 256, (24, 72, 3), dtype=np.uint8)
    tb.image(20, "samples/coffee", strip)
    tb.close()
    acc = _read(tmp_path / "tb")
    assert _scalars(acc, "train/loss") == [(10, 0.5), (20, 0.25)]
    assert [s for s, _ in _scalars(acc, "train/lr")] == [10, 20]
    assert _scalars(acc, "train/lr")[1][1] == pytest.approx(5e-4)
    assert _scalars(acc, "train/ms_per_step") == [(10, 12.5), (20, 11.0)]
    assert _scalars(acc, "val/psnr") == [(20, 28.5)]
    assert _scalars(acc, "val/input_psnr") == [(20, 20.25)]
    (img,) = acc.Images("samples/coffee")
    assert (img.step, img.width, img.height) == (20, 72, 24)


def _fake_run(root: Path) -> Path:
    run = root / "00007-tiny"
    (run / "samples").mkdir(parents=True)
    recs = [
        {"kind": "event", "step": 0, "time": 1.0, "msg": "started", "level": "info"},
        {"kind": "train", "step": 10, "time": 2.0, "loss": 0.4, "lr": 0.001, "ms_per_step": 30.0},
        {"kind": "train", "step": 20, "time": 3.0, "loss": 0.3, "lr": 0.001, "ms_per_step": 29.0},
        {"kind": "val", "step": 20, "time": 4.0, "psnr": 27.1, "input_psnr": 20.2, "dataset": "x"},
    ]
    text = "".join(json.dumps(r) + "\n" for r in recs) + '{"kind": "train", "st'  # torn last line
    (run / "metrics.jsonl").write_text(text)
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    strip = np.zeros((16, 48, 3), dtype=np.uint8)
    save_image(run / "samples" / "step-00000020-coffee.png", strip)
    save_image(run / "samples" / "step-00000020-astronaut.png", strip)
    return run


def test_export_run_converts_metrics_and_samples(tmp_path, capsys):
    run = _fake_run(tmp_path)
    assert main(["export-tb", str(run)]) == 0
    assert str(run / "tensorboard") in capsys.readouterr().out
    assert main(["export-tb", str(run)]) == 0  # again: replaces, never duplicates
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    acc = _read(run / "tensorboard")
    assert _scalars(acc, "train/loss") == [(10, pytest.approx(0.4)), (20, pytest.approx(0.3))]
    assert _scalars(acc, "val/psnr") == [(20, pytest.approx(27.1))]
    assert [e.wall_time for e in acc.Scalars("val/input_psnr")] == [4.0]
    assert sorted(acc.Tags()["images"]) == ["samples/astronaut", "samples/coffee"]


def test_export_tb_on_a_non_run_folder_is_a_user_error(tmp_path, capsys):
    assert main(["export-tb", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path) in err


def test_missing_tensorboard_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import -> ImportError
    with pytest.raises(UserError, match="pip install"):
        TBWriter(tmp_path / "tb")
    with pytest.raises(UserError, match="tensorboard"):
        write_tensorboard_events(_fake_run(tmp_path))


def test_a_run_with_runtime_tensorboard_writes_events_live(make_preset, tmp_path):
    preset = make_preset(train__steps=4, train__val_every=2, train__snapshot_every=0)
    argv = ["run", str(preset), "--results-dir", str(tmp_path / "r"), "--set"]
    assert main([*argv, "runtime.tensorboard=true"]) == 0
    (run,) = (tmp_path / "r").iterdir()
    acc = _read(run / "tensorboard")
    assert [s for s, _ in _scalars(acc, "train/loss")] == [1, 2, 3, 4]
    assert [s for s, _ in _scalars(acc, "val/psnr")] == [2, 4]
    assert acc.Tags()["images"], "sample strips missing"


def test_export_includes_sys_records_per_rank_and_device(tmp_path):
    import shutil

    run = tmp_path / "00000-sampled"
    shutil.copytree(FIXTURES / "pictures" / "00000-sampled", run)
    assert main(["export-tb", str(run)]) == 0
    acc = _read(run / "tensorboard")
    assert [s for s, _ in _scalars(acc, "sys/rank1/data_wait")] == [
        500,
        1000,
        1500,
        2000,
        2500,
        3000,
    ]
    assert _scalars(acc, "sys/rank1/device1/util_pct")[-1] == (3000, 78.0)
    assert _scalars(acc, "sys/rank0/device0/power_w")[-1] == (3000, pytest.approx(402.5))
