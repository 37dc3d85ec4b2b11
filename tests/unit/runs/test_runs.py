import json
import threading

from n2n_core.runs.folders import allocate_run_dir
from n2n_core.runs.records import TrainRecord, ValRecord, read_metrics
from n2n_core.runs.summary import list_runs, summarize_run
from n2n_core.runs.tail import MetricsTail
from n2n_core.runs.writer import MetricsWriter


def test_run_ids_are_sequential_and_five_digits(tmp_path):
    a = allocate_run_dir(tmp_path, "a")
    b = allocate_run_dir(tmp_path, "b")
    assert a.name == "00000-a" and b.name == "00001-b"
    (tmp_path / "00041-old").mkdir()
    assert allocate_run_dir(tmp_path, "c").name == "00042-c"


def test_concurrent_allocation_gives_distinct_ids(tmp_path):
    out, lock = [], threading.Lock()

    def go(i):
        p = allocate_run_dir(tmp_path, f"r{i}")
        with lock:
            out.append(p.name[:5])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 16


def test_metrics_reader_skips_torn_and_garbage_lines(tmp_path):
    p = tmp_path / "metrics.jsonl"
    with MetricsWriter(p) as w:
        w.write(TrainRecord(step=1, loss=0.5))
        w.write(ValRecord(step=2, psnr=30.0, input_psnr=20.0))
    with open(p, "a") as f:
        f.write('garbage line\n[1, 2]\n{"no_kind": 1}\n\x00\x00\n')
        f.write('{"kind": "train", "step": 3, "lo')  # torn last line
    recs = read_metrics(p)
    assert [r.step for r in recs] == [1, 2]


def test_tail_holds_back_partial_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    tail = MetricsTail(p)
    assert tail.read_new() == (False, [])
    p.write_text('{"kind":"train","step":1}\n{"kind":"tr')
    assert [r.step for r in tail.read_new().items] == [1]
    with open(p, "a") as f:
        f.write('ain","step":2}\n')
    assert [r.step for r in tail.read_new().items] == [2]
    p.write_text('{"kind":"train","step":9}\n')  # rewritten shorter: start over
    reset, recs = tail.read_new()
    assert reset and [r.step for r in recs] == [9]


def test_summary_without_run_json(tmp_path):
    d = tmp_path / "00003-x"
    d.mkdir()
    (d / "metrics.jsonl").write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"kind": "train", "step": 10, "loss": 0.1, "ms_per_step": 5.0},
                {"kind": "val", "step": 10, "psnr": 28.0, "input_psnr": 20.2},
                {"kind": "val", "step": 20, "psnr": 27.5, "input_psnr": 20.2}
                | {"colour_shift": 0.426, "colour_shift_worst": -1.234},
            ]
        )
        + "\n"
    )
    s = summarize_run(d)
    assert s.status == "no run.json"
    assert (s.step, s.best_psnr, s.last_psnr, s.ms_per_step) == (20, 28.0, 27.5, 5.0)
    # `runs --json`: the colour shift beside the PSNR it was measured with
    js = s.to_json()
    assert (js["last_psnr"], js["colour_shift"], js["colour_shift_worst"]) == (27.5, 0.43, -1.23)
    assert [r.name for r in list_runs(tmp_path)] == ["x"]


def test_drop_metrics_after_keeps_events_and_earlier_steps(tmp_path):
    from n2n_core.runs.writer import drop_metrics_after

    p = tmp_path / "metrics.jsonl"
    with MetricsWriter(p) as w:
        for s in (10, 20, 30):
            w.write(TrainRecord(step=s))
        w.write(ValRecord(step=30, psnr=1.0))
        w.event(25, "something happened")
    assert drop_metrics_after(p, 20) == 2
    assert [(r.kind, r.step) for r in read_metrics(p)] == [
        ("train", 10),
        ("train", 20),
        ("event", 25),
    ]


def test_an_evaluation_changes_the_row_a_list_redraws(tmp_path):
    """`evaluate` appends eval records and leaves run.json alone: the summary must still
    compare unequal, or the TUI's runs list (which redraws changed rows) keeps a stale Eval."""
    import time

    from n2n_core.runs.info import update_run_info
    from n2n_tui.models.runindex import RunIndex

    d = allocate_run_dir(tmp_path, "demo")
    update_run_info(d, status="finished", total_steps=10, started=time.time(), exit_code=0)
    with MetricsWriter(d / "metrics.jsonl") as w:
        w.train(10, 0.1, 1e-3, 5.0)
        w.val(10, 30.0, 20.0, "val", 3, None)
    index = RunIndex(tmp_path)
    before = index.scan()
    with MetricsWriter(d / "metrics.jsonl") as w:
        w.eval(10, "final.safetensors", "kodak", "gaussian", 25, 31.5, 20.1, 24, {}, {}, True)
    after = index.scan()
    assert (before[0].eval_psnr, after[0].eval_psnr) == (None, 31.5)
    assert before != after
