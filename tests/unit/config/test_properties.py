"""Property tests (hypothesis): the preset loader and the metrics reader never crash.

Whatever a user writes, the loader returns a valid Preset or raises UserError
with a one-line message; whatever bytes a metrics file holds, the readers return
exactly the whole valid records and never raise.
"""

from __future__ import annotations

import json
import os
import tempfile

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from n2n_core.config.overrides import apply_overrides
from n2n_core.config.schema import Preset, validate_preset
from n2n_core.errors import UserError
from n2n_core.runs.records import RECORD_KINDS, read_metrics
from n2n_core.runs.tail import MetricsTail

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
keys = st.sampled_from(
    [
        "name",
        "task",
        "noise",
        "type",
        "train",
        "steps",
        "crop",
        "batch",
        "lr",
        "data",
        "runtime",
        "device",
        "precision",
        "targets",
        "val_sigma",
        "x",
    ]
)
trees = st.recursive(
    scalars,
    lambda children: st.dictionaries(keys, children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_preset_validation_never_crashes(data):
    try:
        p = validate_preset(data, "p.yaml")
    except UserError as e:
        msg = str(e)
        assert msg.startswith("p.yaml") and "\n" not in msg
    else:
        assert isinstance(p, Preset)


base = {"name": "x", "train": {"steps": 5}}


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "train.steps",
                "train.crop",
                "noise.type",
                "runtime.nproc",
                "train.lr",
                "data.val",
                "train",
            ]
        ),
        st.text(max_size=8),
        max_size=3,
    )
)
def test_overrides_never_crash(overrides):
    data = json.loads(json.dumps(base))
    try:
        apply_overrides(data, [f"{k}={v}" for k, v in overrides.items()])
        validate_preset(data, "p.yaml")
    except UserError as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_yaml_text_never_crashes(text):
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    try:
        validate_preset(data, "p.yaml")
    except UserError:
        pass


record = st.fixed_dictionaries(
    {"kind": st.sampled_from(["train", "val", "event"]), "step": st.integers(0, 10**9)},
    optional={
        "loss": st.floats(allow_nan=False, allow_infinity=False),
        "msg": st.text(max_size=10),
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.one_of(record, st.binary(max_size=30)), max_size=20), st.integers(1, 64))
def test_metrics_reader_returns_exactly_the_whole_records(items, chunk):
    lines, want = [], []
    for it in items:
        if isinstance(it, dict):
            lines.append(json.dumps(it).encode())
            want.append(it)
        else:
            junk = it.replace(b"\n", b" ")
            try:
                parsed = json.loads(junk)
                if isinstance(parsed, dict) and parsed.get("kind") in RECORD_KINDS:
                    want.append(parsed)
            except ValueError:
                pass
            lines.append(junk)
    blob = b"\n".join(lines) + b"\n"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "metrics.jsonl")
        with open(path, "wb") as f:
            f.write(blob + b'{"kind": "train", "step"')  # plus a torn last line
        assert [r.to_json() for r in read_metrics(path)] == want
        # the tail, fed in arbitrary small chunks, sees the same records
        tail = MetricsTail(path)
        got = []
        for _ in range(len(blob) // chunk + 5):
            got += tail.read_new(max_bytes=chunk).items
        assert [r.to_json() for r in got] == want
