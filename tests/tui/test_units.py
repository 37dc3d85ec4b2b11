"""Pure parts of the TUI: series, log reading, charts, commands, formatting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from n2n_core import formatting as fmt
from n2n_core.runs.records import read_metrics
from n2n_core.runs.series import Series
from n2n_tui.models.follow import RunFollower
from n2n_tui.models.procs import LaunchSpec, split_overrides
from n2n_tui.widgets.charts import Line, render_chart


def test_series_stays_bounded_and_keeps_the_whole_history():
    s = Series(capacity=64)
    for i in range(500_000):
        s.append(i, 1.0)
    xs, ys = s.points()
    assert len(xs) <= 64
    assert xs[0] < 20_000 and xs[-1] == 499_999  # start and end of the run both present
    assert all(y == 1.0 for y in ys)
    assert s.count == 500_000


def test_series_averages_when_downsampling():
    s = Series(capacity=4)
    for i, y in enumerate([0, 2, 4, 6, 8, 10]):
        s.append(i, y)
    xs, ys = s.points()
    assert ys[:2] == [1.0, 5.0]


def test_read_metrics_skips_torn_and_garbage_lines(tmp_path: Path):
    p = tmp_path / "m.jsonl"
    good = [{"kind": "train", "step": i, "loss": 0.1} for i in range(3)]
    p.write_text(
        json.dumps(good[0])
        + "\nnot json\n"
        + json.dumps(good[1])
        + "\n\n[1,2]\n"
        + json.dumps(good[2])
        + '\n{"kind": "tr'
    )
    feed = RunFollower(tmp_path)
    feed.ingest(read_metrics(p))
    assert feed.values.step == 2 and feed.values.records == 3


def test_read_metrics_fast_path(tmp_path: Path):
    p = tmp_path / "m.jsonl"
    p.write_text(
        "".join(json.dumps({"kind": "val", "step": i, "psnr": 20 + i}) + "\n" for i in range(5))
    )
    feed = RunFollower(tmp_path)
    feed.ingest(read_metrics(p))
    assert feed.values.best_psnr == 24 and feed.values.best_step == 4


def test_log_tail_holds_back_partial_lines(tmp_path: Path):
    p = tmp_path / "log.txt"
    p.write_text("one\ntw")
    t = RunFollower(tmp_path, log=True)
    t.poll()
    assert list(t.log_lines) == ["one"]
    with open(p, "a") as f:
        f.write("o\n\rprogress 10%\rprogress 20%\n")
    t.poll()
    assert list(t.log_lines) == ["one", "two", "progress 20%"]


def test_render_chart_has_the_requested_size():
    xs = list(range(0, 10_000, 10))
    ys = [30 - 10 / (1 + x / 500) for x in xs]
    t = render_chart(
        [Line(xs, ys, "red"), Line(xs, [20.0] * len(xs), "grey50", dashed=True)], 60, 12
    )
    lines = t.plain.split("\n")
    assert len(lines) == 12 and all(len(ln) == 60 for ln in lines)
    assert "10k" in lines[-1] or "9990" in lines[-1]
    empty = render_chart([], 40, 6, empty="nothing yet").plain
    assert "nothing yet" in empty


def test_launch_spec_is_the_exact_command():
    spec = LaunchSpec(
        preset=Path("presets/quick.yaml"),
        name="try-1",
        nproc=8,
        device="cuda",
        precision="bf16",
        overrides=split_overrides("train.steps=200 --set train.batch=8"),
        results_dir=Path("results"),
    )
    assert spec.display() == (
        "n2n-core run presets/quick.yaml --set train.steps=200 --set train.batch=8 "
        "--set runtime.precision=bf16 --nproc 8 --device cuda --results-dir results --name try-1"
    )


def test_formatting():
    assert fmt.psnr(31.8249) == "31.82"
    assert fmt.psnr(None) == fmt.DASH
    assert fmt.steps(123_400, 500_000) == "123k/500k"
    assert fmt.age(100.0, 100.0 + 180) == "3m ago"
    assert fmt.duration(3 * 86400 + 7200) == "3d 02h"


def test_remaining_time_is_wall_time_and_counts_down(tmp_path: Path):
    from n2n_core.runs.records import EventRecord, TrainRecord

    feed = RunFollower(tmp_path)
    # 60 ms of compute per step, but 100 ms of wall time (validation, snapshots).
    feed.ingest(
        [
            TrainRecord(step=s, time=1000.0 + s * 0.1, ms_per_step=60.0)
            for s in range(100, 1001, 100)
        ]
    )
    v = feed.copy_values()
    assert v.remaining_s(2000, now=1100.0) == pytest.approx(100.0)
    assert v.remaining_s(2000, now=1130.0) == pytest.approx(70.0)  # ticks without new records
    assert v.remaining_s(1000, now=1100.0) is None
    # A long pause (stopped, resumed later) is not counted as training time.
    feed.ingest([TrainRecord(step=s, time=9000.0 + (s - 1000) * 0.1) for s in (1100, 1200)])
    assert feed.copy_values().remaining_s(2000, now=9020.0) == pytest.approx(80.0)
    # Nor is a short one: the resume's event starts a new measurement.
    feed.ingest(
        [
            EventRecord(step=1200, time=9100.0, msg="resumed at step 1200: cpu x1 fp32"),
            *[TrainRecord(step=s, time=9100.0 + (s - 1200) * 0.2) for s in (1300, 1400)],
        ]
    )
    assert feed.copy_values().remaining_s(2000, now=9140.0) == pytest.approx(120.0)


def test_mri_presets_edit_field_by_field():
    from n2n_core.config.loader import read_preset_data
    from n2n_core.config.schema import validate_preset
    from n2n_tui.models import presetform as pf

    root = Path(__file__).resolve().parents[2] / "presets"
    original = read_preset_data(root / "mri-n2n.yaml")
    base = validate_preset(original)
    names = dict(pf.sections(base))
    assert [s.key for s in names["mri"]][:2] == ["mri.epochs", "mri.rampup_epochs"]
    assert "mri" not in {s.key for s in names["general"]}
    values = pf.field_values(base)
    values["mri.epochs"] = "200"
    new, errors = pf.validate(pf.build_data(original, values, base.noise.type))
    assert errors == {} and new.mri.epochs == 200
    edited = pf.edited_data(original, base, new)
    assert edited["mri"] == {**original["mri"], "epochs": 200}

    image = validate_preset(read_preset_data(root / "quickstart.yaml"))
    keys = {s.key for _, specs in pf.sections(image) for s in specs}
    assert not any(k.split(".")[0] in ("mri", "slurm") for k in keys)


def test_colour_shift_beside_psnr(tmp_path: Path):
    from n2n_core.runs.records import ValRecord
    from n2n_core.runs.state import RunState
    from n2n_tui.models.snapshots import colour_text, validation_line

    assert fmt.colour_shift(0.724, -2.304) == "0.72 (worst -2.30)"
    assert fmt.colour_shift(None, None) == fmt.DASH
    st = RunState()
    st.feed([ValRecord(step=5, psnr=30.0, colour_shift=0.5, colour_shift_worst=-1.5)])
    st.feed([ValRecord(step=6, psnr=30.1)])  # an older writer: the last measured one stays
    assert (st.values.colour_shift, st.values.colour_shift_worst) == (0.5, -1.5)
    res = {
        "psnr": 30.0,
        "colour_shift": 0.72,
        "colour_shift_worst": -2.3,
        "colour_shift_worst_channel": "G",
        "colour_shift_worst_image": "[b]frog[/b].png",
    }
    assert colour_text(res) == ", colour shift 0.72 (worst -2.30 G in [b]frog[/b].png)"
    line = validation_line(tmp_path / "s.safetensors", tmp_path, res, 0.0)
    assert line.endswith("PSNR 30.00 dB, colour shift 0.72 (worst -2.30 G in [b]frog[/b].png)")
    assert colour_text({"psnr": 1.0}) == ""


def test_nested_sections_are_fields_and_an_untouched_preset_validates():
    from n2n_core.config.loader import read_preset_data
    from n2n_core.config.schema import validate_preset
    from n2n_tui.models import presetform as pf

    path = Path(__file__).resolve().parents[2] / "presets" / "quickstart.yaml"
    original = read_preset_data(path)
    base = validate_preset(original)
    values = pf.field_values(base)
    assert values["data.augment.flips"] is True and "data.augment" not in values
    new, errors = pf.validate(pf.build_data(original, values, base.noise.type))
    assert errors == {} and pf.edited_data(original, base, new) == original
