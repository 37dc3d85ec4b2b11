"""What a run's log points out about its settings."""

from __future__ import annotations

import pytest

from n2n_core.config.preset import load_preset
from n2n_core.runs.folders import prepare_run
from n2n_core.training.loop import train_worker


@pytest.mark.parametrize("crop, noted", [(32, True), (64, False)])
def test_a_crop_too_small_for_the_unet_is_pointed_out(make_preset, tmp_path, crop, noted):
    p = make_preset(train__steps=1, train__crop=crop, train__val_every=0)
    run_dir = prepare_run(load_preset(p), tmp_path / "res", None, ["test"])
    assert train_worker(run_dir) == "finished"
    log = (run_dir / "log.txt").read_text()
    assert ("deepest layer trains on 1x1 maps" in log) is noted
