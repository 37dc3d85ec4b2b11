"""sweep.json written by a newer version keeps what this version does not know."""

from __future__ import annotations

import json

from n2n_core.sweeps.store import SWEEP_FILE, read_sweep, write_sweep


def test_sweep_json_keeps_keys_it_does_not_know(tmp_path):
    data = {
        "format": "n2n-sweep/1",
        "name": "s",
        "preset": "p.yaml",
        "base": {},
        "grid": {"train.lr": [0.001]},
        "sets": ["train.lr=0.001"],
        "seeds": 1,
        "executor": "local",
        "slots": None,
        "devices": None,
        "points": [{"index": 0, "params": {"train.lr": 0.001}, "run": "00001-s", "queue": 3}],
        "ensemble": {"members": 3},
    }
    (tmp_path / SWEEP_FILE).write_text(json.dumps(data))
    sweep = read_sweep(tmp_path)
    sweep.points[0].status = "finished"
    write_sweep(tmp_path, sweep)
    again = json.loads((tmp_path / SWEEP_FILE).read_text())
    assert again["ensemble"] == {"members": 3}
    assert again["points"][0]["queue"] == 3 and again["points"][0]["status"] == "finished"
    assert list(again)[1:4] == ["name", "preset", "base"]  # known keys keep their order
