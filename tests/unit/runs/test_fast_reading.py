"""A long log is read without typing every line: the result must be exactly the typed one.

``RunState.feed`` takes decoded JSON objects (train objects of the writer's own
shape read straight from the dict, only the newest sys sample typed) as well as
typed records; ``decode_lines`` decodes a chunk in one C call. Whatever the
lines hold (ints for floats, NaN from a diverged run, missing or extra or
wrongly typed fields, torn and garbage lines, resumes), both ways give the same
values, series and events, and the same records as Python's json module.
"""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from n2n_core.runs.records import decode_lines, parse_lines, parse_record, read_metrics
from n2n_core.runs.state import RunState

nums = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-(2**70), 2**70),
)
maybe = st.one_of(st.none(), nums, st.text(max_size=3), st.booleans())
steps = st.one_of(st.integers(0, 10**6), st.none(), st.floats(0, 10), st.booleans())
times = st.one_of(st.floats(1e9, 2e9), st.integers(10**9, 2 * 10**9), st.none())


def train_obj(step, t, loss, lr, ms):
    return {"kind": "train", "step": step, "time": t, "loss": loss, "lr": lr, "ms_per_step": ms}


objects = st.one_of(
    st.builds(train_obj, st.integers(0, 10**6), times, nums, nums, nums),  # the plain shape
    st.builds(train_obj, steps, times, maybe, maybe, maybe),
    st.builds(
        lambda step, t, extra: {**train_obj(step, t, 0.1, 1e-3, 30.0), **extra},
        st.integers(0, 10**6),
        times,
        st.dictionaries(st.sampled_from(["gpu", "loss2"]), maybe, max_size=2),
    ),
    st.builds(
        lambda step, t, p, ip: {
            "kind": "val",
            "step": step,
            "time": t,
            "psnr": p,
            "input_psnr": ip,
        },
        steps,
        times,
        maybe,
        maybe,
    ),
    st.builds(
        lambda step, t, msg: {
            "kind": "event",
            "step": step,
            "time": t,
            "msg": msg,
            "level": "info",
        },
        steps,
        times,
        st.sampled_from(
            ["started: cpu", "resumed at step 5", "stopped by SIGINT", "finished in 1:00", "x"]
        ),
    ),
    st.builds(
        lambda step, t, cpu, ranks: {
            "kind": "sys",
            "step": step,
            "time": t,
            "ranks": ranks if ranks is not None else [{"rank": 0, "cpu_pct": cpu, "devices": []}],
        },
        steps,
        times,
        maybe,
        st.one_of(st.none(), st.just("bad"), st.just([1, {"rank": "x"}])),
    ),
    st.builds(
        lambda step, snap, p: {
            "kind": "eval",
            "step": step,
            "snapshot": snap,
            "dataset": "kodak",
            "level": 25,
            "psnr": p,
        },
        steps,
        st.sampled_from(["final.safetensors", "snapshot-00000100.safetensors"]),
        maybe,
    ),
)


def to_line(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


lines_st = st.lists(
    st.one_of(
        objects.map(to_line),
        st.sampled_from(
            [b"", b"   ", b"{torn", b"[1, 2]", b"null", b'"x"', b"\xff\xfe", b"{" * 3000]
        ),
    ),
    max_size=40,
)


def same(a, b) -> bool:
    """Equal, with NaN equal to NaN (a diverged run's loss is NaN on both sides)."""
    return repr(a) == repr(b)


def state_of(items, capacity=8) -> RunState:
    s = RunState(capacity)
    s.feed(items)
    return s


@settings(max_examples=300, deadline=None)
@given(lines_st)
def test_decoded_objects_feed_the_state_exactly_as_typed_records(lines):
    typed = state_of(parse_lines(lines))
    fast = state_of(decode_lines(lines))
    assert same(typed.copy_values(), fast.copy_values())
    for name, series in typed.series.items():
        assert same(series.points(), fast.series[name].points()), name
    assert same(typed.val_psnr, fast.val_psnr)


@settings(max_examples=300, deadline=None)
@given(lines_st)
def test_the_fast_decoder_reads_what_json_reads(lines):
    def by_json(line: bytes):
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            return None
        return parse_record(item) if type(item) is dict else None

    want = [r for ln in lines if ln.strip() and (r := by_json(ln)) is not None]
    assert same(parse_lines(lines), want)


def test_a_run_fed_in_chunks_of_decoded_objects_equals_one_typed_read(tmp_path):
    # A resume's "resumed at" event, a NaN loss, a sys sample between: fed in two
    # chunks as a follower does, decoded, the state is the typed whole-file one.
    recs = [
        {"kind": "event", "step": 0, "time": 1e9, "msg": "started: cpu", "level": "info"},
        train_obj(100, 1e9 + 1, 0.5, 1e-3, 30.0),
        {
            "kind": "sys",
            "step": 100,
            "time": 1e9 + 1,
            "ranks": [{"rank": 0, "cpu_pct": 50.0, "devices": []}],
        },
        train_obj(200, 1e9 + 2, math.nan, 1e-3, 31.0),
        {"kind": "val", "step": 200, "time": 1e9 + 3, "psnr": 28.5, "input_psnr": 20.1},
        {
            "kind": "event",
            "step": 200,
            "time": 1e9 + 900,
            "msg": "resumed at step 200",
            "level": "info",
        },
        train_obj(300, 1e9 + 901, 0.4, 1e-3, 29.0),
        {
            "kind": "sys",
            "step": 300,
            "time": 1e9 + 901,
            "ranks": [{"rank": 0, "cpu_pct": 70.0, "devices": []}],
        },
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"".join(to_line(r) + b"\n" for r in recs))
    whole = state_of(read_metrics(path), capacity=None)
    lines = path.read_bytes().split(b"\n")
    chunked = RunState(None)
    chunked.feed(decode_lines(lines[:4]))
    chunked.feed(decode_lines(lines[4:]))
    assert same(whole.copy_values(), chunked.copy_values())
    assert chunked.values.sys.ranks[0].cpu_pct == 70.0  # the newest sample, typed
    assert chunked.values.train_records == 3 and chunked.values.step == 300


def test_long_floats_stay_fast_and_long_integers_stay_exact():
    # 0.000123... has 20 digits in a row and is a float; 12345678901234567890 is an integer
    # past 64 bits, which only json reads exactly.
    lines = [
        b'{"kind":"train","step":1,"time":1.5,"loss":0.00012345678901234567,"lr":1e-05,"ms_per_step":1}',
        b'{"kind":"event","step":2,"time":2.0,"msg":"x","level":"info","n":12345678901234567890}',
    ]
    recs = parse_lines(lines)
    assert recs[0].loss == 0.00012345678901234567
    assert recs[1].extra["n"] == 12345678901234567890 and type(recs[1].extra["n"]) is int
    assert decode_lines(lines)[1]["n"] == 12345678901234567890
