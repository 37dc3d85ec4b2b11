"""System and accelerator metrics (`sys` records): parsers, the record, the monitor."""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time

import pytest
from cli_helpers import n2n_in_process
from helpers import FIXTURES

from n2n_core.engine.sysmon import (
    VECTOR_LEN,
    SysMonitor,
    from_vector,
    gather_ranks,
    npu_device_stats,
    nvml_device_stats,
    nvml_handle,
    parse_npu_smi,
    to_vector,
)
from n2n_core.runs.records import (
    DeviceStats,
    RankStats,
    SysRecord,
    parse_record,
)
from n2n_core.runs.state import RunState

NPU_SMI = FIXTURES / "npu-smi"


def test_npu_smi_910b_reads_hbm_util_power_temp_per_chip():
    chips = parse_npu_smi((NPU_SMI / "910b-info.txt").read_text())
    assert chips == [
        DeviceStats(0, "npu", 37.0, 31438.0, 65536.0, 41.0, 95.1),
        DeviceStats(1, "npu", 0.0, 3385.0, 65536.0, 39.0, 88.7),
    ]


def test_npu_smi_910a_prefers_hbm_over_ddr_memory():
    chips = parse_npu_smi((NPU_SMI / "910a-info.txt").read_text())
    assert [(c.mem_used_mb, c.mem_total_mb, c.util_pct) for c in chips] == [
        (22141.0, 32768.0, 93.0),
        (21987.0, 32768.0, 91.0),
    ]


def test_npu_smi_310p_without_hbm_or_power_leaves_power_out():
    chips = parse_npu_smi((NPU_SMI / "310p-info.txt").read_text())
    assert [(c.index, c.mem_used_mb, c.mem_total_mb, c.power_w, c.temp_c) for c in chips] == [
        (0, 1646.0, 21527.0, None, 52.0),
        (1, 6131.0, 21527.0, None, 49.0),
    ]


def test_npu_smi_garbage_or_missing_tool_gives_nothing(monkeypatch):
    assert parse_npu_smi("npu-smi: command failed\n| x | y |\n") == []
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert npu_device_stats(0) is None


def test_npu_device_follows_ascend_visible_devices(monkeypatch):
    text = (NPU_SMI / "910b-info.txt").read_text()
    monkeypatch.setattr("shutil.which", lambda name: "/usr/local/bin/npu-smi")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1")

    def run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 0, stdout=text, stderr="")

    dev = npu_device_stats(0, run=run)
    assert dev is not None and dev.index == 0 and dev.mem_used_mb == 3385.0


def test_nvml_readings_with_real_structs_and_a_refused_query(monkeypatch):
    pynvml = pytest.importorskip("pynvml")
    # What an H100 driver answered (utilisation, memory in bytes, temperature, mW);
    # power is refused here, as on boards without a power sensor.
    util = pynvml.c_nvmlUtilization_t(gpu=87, memory=41)
    mem = pynvml.c_nvmlMemory_t(total=85520809984, free=40369274880, used=45151535104)

    def refused(handle):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates", lambda h: util)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", lambda h: mem)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", lambda h, sensor: 64)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerUsage", refused)
    dev = nvml_device_stats(pynvml, object(), 3)
    assert dev.index == 3 and dev.type == "cuda"
    assert dev.util_pct == 87.0 and dev.temp_c == 64.0 and dev.power_w is None
    assert dev.mem_used_mb == pytest.approx(43059.9, abs=0.1)
    assert dev.mem_total_mb == pytest.approx(81559.0, abs=0.1)


def test_nvml_handle_follows_cuda_visible_devices(monkeypatch):
    calls = []

    class FakeNvml:
        def nvmlDeviceGetHandleByIndex(self, i):
            calls.append(("index", i))

        def nvmlDeviceGetHandleByUUID(self, u):
            calls.append(("uuid", u))

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,2")
    nvml_handle(FakeNvml(), 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f2a,GPU-77c1")
    nvml_handle(FakeNvml(), 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    nvml_handle(FakeNvml(), 4)
    assert calls == [("index", 2), ("uuid", "GPU-8f2a"), ("index", 4)]


def test_record_round_trips_and_leaves_absent_sensors_out():
    rec = SysRecord(
        step=400,
        time=1.5,
        ranks=(
            RankStats(
                0, 55.0, 2048.0, 9000.0, 16000.0, 0.031, 31.2, (DeviceStats(0, "cuda", 90.0),)
            ),
            RankStats(1, None, 2050.0, data_wait=0.5, ms_per_step=44.0),
        ),
    )
    js = rec.to_json()
    assert js["kind"] == "sys"
    assert js["ranks"][0]["devices"] == [{"index": 0, "type": "cuda", "util_pct": 90.0}]
    assert "cpu_pct" not in js["ranks"][1]
    back = parse_record(rec.to_line())
    assert back == rec
    garbled = parse_record({"kind": "sys", "step": 3, "ranks": [{"rank": "x"}, 7, {"rank": 1}]})
    assert garbled.ranks == (RankStats(1),)
    state = RunState()
    state.feed([back])
    assert state.values.sys == rec  # the one aggregator keeps the newest


def test_vector_carries_one_rank_with_nan_for_absent():
    r = RankStats(2, 10.0, None, 3.0, 4.0, 0.25, 12.5, (DeviceStats(1, "npu", None, 5.0),))
    v = to_vector(r)
    assert len(v) == VECTOR_LEN and math.isnan(v[1])
    assert from_vector(2, v, "npu") == r
    no_dev = RankStats(0, 1.0)
    assert from_vector(0, to_vector(no_dev), "cpu") == no_dev


def test_monitor_times_steps_without_pauses_and_data_wait(monkeypatch):
    # A clock the test moves: the arithmetic is checked exactly, whatever the machine's load.
    import n2n_core.engine.sysmon as sysmon

    clock = [100.0]
    monkeypatch.setattr(sysmon.time, "perf_counter", lambda: clock[0])
    mon = SysMonitor(0, "cpu", None, interval=0)
    for paused in (False, True, False, False):
        mon.step_begin()
        clock[0] += 0.002
        mon.data_ready()
        clock[0] += 0.006 if not paused else 0.05
        if paused:
            mon.pause()
    mon.step_begin()
    (r,) = gather_ranks(mon, 1, None)
    assert r.rank == 0 and not mon.due()
    # Three timed iterations of 8 ms: the paused one (52 ms) is left out.
    assert r.ms_per_step == pytest.approx(8.0)
    assert r.data_wait == pytest.approx(0.25)


def test_monitor_thread_samples_host_stats():
    mon = SysMonitor(0, "cpu", None, interval=0.01).start()
    try:
        deadline = time.monotonic() + 10
        while not mon.due() and time.monotonic() < deadline:
            time.sleep(0.01)
        r = mon.take()
    finally:
        mon.close()
    assert r.rss_mb and r.rss_mb > 1 and r.ram_total_mb and r.ram_total_mb >= r.ram_used_mb
    assert r.cpu_pct is not None and r.devices == ()


def test_a_run_writes_sys_records(make_preset, tmp_path):
    p = make_preset(train__steps=4, train__val_every=0, runtime__sys_every=0.01)
    r = n2n_in_process("run", p, "--results-dir", tmp_path / "res")
    assert r.code == 0, r.err
    recs = [json.loads(x) for x in (tmp_path / "res" / "00000-tiny" / "metrics.jsonl").open()]
    sys_recs = [parse_record(x) for x in recs if x["kind"] == "sys"]
    assert sys_recs and all([x.rank for x in s.ranks] == [0] for s in sys_recs)
    assert any(s.ranks[0].ms_per_step for s in sys_recs)


MAX_INTERVAL_S = 86_400.0  # sysmon.MAX_INTERVAL_S


def test_sysmon_clamps_an_interval_it_cannot_arm(monkeypatch):
    crashed = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    for interval in (float("inf"), 1e12):
        mon = SysMonitor(0, "cpu", None, interval).start()
        assert mon.interval == MAX_INTERVAL_S
        mon.close()
    assert SysMonitor(0, "cpu", None, float("nan")).interval == 0
    assert crashed == []
