"""The typed run model: records, run.json, the aggregator and the file tail."""

from __future__ import annotations

import json
import os
import threading

from n2n_core.runs.info import RunInfo, read_run_info, update_run_info
from n2n_core.runs.records import EventRecord, TrainRecord, ValRecord, parse_record, read_metrics
from n2n_core.runs.state import RunState
from n2n_core.runs.tail import FileTail, MetricsTail
from n2n_core.runs.writer import MetricsWriter, drop_metrics_after


def test_writer_lines_keep_the_design_format(tmp_path):
    p = tmp_path / "metrics.jsonl"
    with MetricsWriter(p, clock=lambda: 12.5) as w:
        w.train(10, 0.25, 3e-4, 31.23456)
        w.val(20, 30.123456, 20.5, "kodak", 24)
        w.event(20, "hello", level="error")
    lines = [json.loads(x) for x in p.read_text().splitlines()]
    assert [list(r) for r in lines] == [
        ["kind", "step", "time", "loss", "lr", "ms_per_step"],
        ["kind", "step", "time", "psnr", "input_psnr", "dataset", "images"],
        ["kind", "step", "time", "msg", "level"],
    ]
    assert lines[0]["ms_per_step"] == 31.235 and lines[1]["psnr"] == 30.1235
    recs = read_metrics(p)
    assert recs == [
        TrainRecord(step=10, time=12.5, loss=0.25, lr=3e-4, ms_per_step=31.235),
        ValRecord(step=20, time=12.5, psnr=30.1235, input_psnr=20.5, dataset="kodak", images=24),
        EventRecord(step=20, time=12.5, msg="hello", level="error"),
    ]


def test_parse_is_tolerant_and_loses_nothing():
    assert parse_record('{"kind": "martian", "step": 1}') is None
    assert parse_record(b"[1, 2]") is None and parse_record("not json") is None
    assert parse_record(b"\xff\xfe") is None and parse_record(3) is None  # type: ignore[arg-type]
    line = '{"kind":"val","step":"7","psnr":true,"input_psnr":20,"gpu":"a100"}'
    rec = parse_record(line)
    assert isinstance(rec, ValRecord)
    assert rec.step is None and rec.psnr is None and rec.input_psnr == 20
    assert rec.to_json() == json.loads(line)  # wrong-typed and unknown fields written back


def test_drop_metrics_after_keeps_unknown_kinds_fields(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text(
        '{"kind":"train","step":5,"loss":1.0,"rank_ms":[1,2]}\n'
        '{"kind":"train","step":9,"loss":0.5}\n'
    )
    assert drop_metrics_after(p, 5) == 1
    assert json.loads(p.read_text()) == {"kind": "train", "step": 5, "loss": 1.0, "rank_ms": [1, 2]}


def test_run_state_last_best_series_and_reset():
    st = RunState(capacity=8)
    n = st.feed(
        [
            TrainRecord(step=10, time=1.0, loss=0.5, lr=1e-3, ms_per_step=4.0),
            ValRecord(step=10, time=2.0, psnr=28.0, input_psnr=20.0, dataset="d"),
            ValRecord(step=20, time=3.0, psnr=27.0, input_psnr=20.0),
            EventRecord(step=None, time=4.0, msg="x", level="info"),
        ]
    )
    v = st.copy_values()
    assert n == 4 and (v.step, v.psnr, v.best_psnr, v.best_step) == (20, 27.0, 28.0, 10)
    assert (v.loss, v.lr, v.ms_per_step, v.dataset) == (0.5, 1e-3, 4.0, "d")
    assert (v.first_time, v.last_time, v.val_records, v.train_records) == (1.0, 4.0, 2, 1)
    assert st.val_psnr == {10: 28.0, 20: 27.0} and [e.msg for e in v.events] == ["x"]
    assert st.series["psnr"].points() == ([10, 20], [28.0, 27.0])
    st.reset()
    assert st.copy_values().step == 0 and st.series["psnr"].points() == ([], [])
    assert RunState(capacity=None).series is None


def _lines(chunk):
    return [bytes(x) for x in chunk.items]


def test_tail_resets_when_replaced_by_a_longer_file(tmp_path):
    # What `resume` does: the file is replaced (a new inode) by a shorter one that
    # has grown past the old offset by the time the reader looks again.
    p = tmp_path / "m.txt"
    p.write_bytes(b"a1\na2\na3\n")
    t = FileTail(p)
    assert t.poll() == (False, [b"a1", b"a2", b"a3"])
    tmp = tmp_path / "new"
    tmp.write_bytes(b"a1\nb2\nb3\nb4\nb5\n")
    os.replace(tmp, p)
    assert t.poll() == (True, [b"a1", b"b2", b"b3", b"b4", b"b5"])
    assert t.poll() == (False, [])


def test_tail_resets_on_same_inode_rewrite_and_truncation(tmp_path):
    p = tmp_path / "m.txt"
    p.write_bytes(b"one\ntwo\n")
    t = FileTail(p)
    t.poll()
    with open(p, "r+b") as f:  # same inode, same size, other content
        f.write(b"ONE\ntwo\n")
    os.utime(p, ns=(1, 1))  # a new stamp even on a coarse clock
    assert t.poll() == (True, [b"ONE", b"two"])
    with open(p, "wb") as f:  # truncated, then written longer than before
        f.write(b"x\n")
    assert t.poll() == (True, [b"x"])
    with open(p, "ab") as f:
        f.write(b"y\nz")
    assert t.poll() == (False, [b"y"]) and t.partial == b"z"


def test_tail_start_window_reads_only_the_end(tmp_path):
    p = tmp_path / "log.txt"
    p.write_bytes(b"".join(b"line %d\n" % i for i in range(1000)))
    t = FileTail(p, start_window=64)
    reset, lines = t.poll()
    assert not reset and lines[-1] == b"line 999" and len(lines) < 10


def test_metrics_tail_reports_reset_with_records(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"kind":"train","step":1}\n{"kind":"train","step":2}\n')
    tail = MetricsTail(p)
    assert [r.step for r in tail.read_new().items] == [1, 2]
    drop_metrics_after(p, 1)
    with open(p, "a") as f:
        f.write('{"kind":"train","step":2}\n{"kind":"train","step":3}\n')
    reset, recs = tail.read_new()
    assert reset and [r.step for r in recs] == [1, 2, 3]


def test_run_info_is_tolerant_and_keeps_unknown_fields(tmp_path):
    (tmp_path / "run.json").write_text(
        json.dumps({"status": "running", "pid": "12", "tags": ["a"], "world_size": 2})
    )
    info = read_run_info(tmp_path)
    assert info is not None
    assert (info.status, info.pid, info.world_size) == ("running", None, 2)
    update_run_info(tmp_path, status="finished", exit_code=0)
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["status"] == "finished" and data["exit_code"] == 0
    assert data["tags"] == ["a"] and data["pid"] == "12"  # not ours to drop
    update_run_info(tmp_path, pid=42)
    assert read_run_info(tmp_path).pid == 42
    (tmp_path / "run.json").write_text("[1]")
    assert read_run_info(tmp_path) is None
    assert RunInfo.parse("x") is None


def test_run_info_writers_do_not_lose_each_others_fields(tmp_path):
    update_run_info(tmp_path, status="running")

    def bump(i: int) -> None:
        for _ in range(20):
            update_run_info(tmp_path, **{("name", "device", "host", "precision")[i]: f"v{i}"})

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = read_run_info(tmp_path)
    assert (info.name, info.device, info.host, info.precision) == ("v0", "v1", "v2", "v3")


def test_an_eval_record_is_kept_but_does_not_move_the_runs_clock():
    from n2n_core.runs.records import EvalRecord, TrainRecord, parse_record
    from n2n_core.runs.state import RunState

    ev = EvalRecord(step=5, time=999.0, snapshot="final.safetensors", dataset="d", psnr=30.1)
    assert parse_record(ev.to_line()) == ev
    state = RunState()
    state.feed([TrainRecord(step=10, time=100.0, loss=0.1), ev])
    v = state.copy_values()
    assert (v.step, v.last_time) == (10, 100.0)  # measured later: not training progress
    assert [e.psnr for e in v.evals] == [30.1]


def test_elapsed_counts_training_sessions_not_the_gap_between_them():
    """Stopped at 10:00 after an hour, resumed next morning for half an hour: 1:30 trained."""
    state = RunState()
    state.feed(
        [
            EventRecord(step=0, time=1000.0, msg="started: cpu x1 fp32"),
            TrainRecord(step=50, time=1000.0 + 1800, loss=0.1),
            EventRecord(step=100, time=1000.0 + 3600, msg="stopped by SIGINT at step 100"),
        ]
    )
    assert state.values.elapsed_s(1000.0 + 3600) == 3600
    state.feed(
        [
            EventRecord(step=100, time=90000.0, msg="resumed at step 100: cpu x1 fp32"),
            TrainRecord(step=150, time=90000.0 + 900, loss=0.1),
        ]
    )
    v = state.copy_values()
    assert v.elapsed_s(90000.0 + 1800) == 3600 + 1800  # running: up to now
    assert RunState().values.elapsed_s(5.0) is None  # no session opened: unknown


def test_elapsed_ignores_failed_resumes_and_a_resume_still_starting():
    state = RunState()
    state.feed(
        [
            EventRecord(step=0, time=0.0, msg="started: cpu x1 fp32"),
            TrainRecord(step=50, time=3000.0, loss=0.1),
            EventRecord(step=60, time=3600.0, msg="stopped by SIGTERM at step 60"),
            # a resume that failed before it trained, the next morning
            EventRecord(step=0, time=50000.0, msg="error: data.val: not found", level="error"),
        ]
    )
    # run.json says "running" again while the next resume imports torch: still 1 hour
    assert state.values.elapsed_s(54000.0) == 3600
    state.feed(
        [
            EventRecord(step=60, time=54000.0, msg="resumed at step 60: cpu x1 fp32"),
            TrainRecord(step=100, time=55800.0, loss=0.1),
            EventRecord(step=100, time=55800.0, msg="finished in 1:30:00"),
        ]
    )
    assert state.values.elapsed_s(99999.0) == 3600 + 1800
    # a session killed without a closing event counts to its last record
    state.feed([EventRecord(step=100, time=60000.0, msg="resumed at step 100: cpu x1 fp32")])
    state.feed([TrainRecord(step=120, time=60600.0, loss=0.1)])
    state.feed([EventRecord(step=100, time=90000.0, msg="resumed at step 100: cpu x1 fp32")])
    assert state.values.elapsed_s(90000.0) == 3600 + 1800 + 600
