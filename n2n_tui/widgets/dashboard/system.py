"""The dashboard's machine view: a one-line summary of the newest ``sys`` record, and per rank."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from n2n_core import formatting as fmt
from n2n_core.engine.sysmon import SysRecord, summarize_sys

from ..charts.chart import muted_colour
from ..common.status import update_if_changed

DEVICE_NAMES = {"cuda": "GPU", "npu": "NPU"}


def pct(x: float | None, scale: float = 1.0) -> str:
    return fmt.DASH if x is None else f"{x * scale:.0f}%"


def gb(used: float | None, total: float | None, sep: str = " ") -> str:
    if used is None:
        return fmt.DASH
    text = f"{used / 1024:.1f}/{total / 1024:.1f}" if total else f"{used / 1024:.1f}"
    return f"{text}{sep}GB"


def unit(x: float | None, suffix: str) -> str:
    return fmt.DASH if x is None else f"{x:.0f}{suffix}"


class SysLine(Static):
    """Devices' mean utilisation, fullest memory, hottest, power; data wait; the slowest rank."""

    def on_mount(self) -> None:
        self.display = False

    def show(self, rec: SysRecord | None) -> None:
        if self.display != (rec is not None):
            self.display = rec is not None
            self.screen.refresh_bindings()  # the machine view is offered once there is data
        if rec is None:
            return
        s = summarize_sys(rec)
        label = muted_colour(self.app)
        parts: list[Text] = []

        def cell(name: str, value: str) -> None:
            t = Text(f"{name} ", style=label)
            t.append(value, style="bold")
            parts.append(t)

        kinds = {dv.type for r in rec.ranks for dv in r.devices}
        if s.devices:
            name = "/".join(sorted(DEVICE_NAMES.get(k, k) for k in kinds))
            cell(f"{name}×{s.devices}", pct(s.util_pct))
            cell("mem", gb(s.mem_used_mb, s.mem_total_mb))
        cell("data wait", pct(s.data_wait, 100))
        if s.ranks > 1 and s.slowest_rank is not None:
            cell("slowest", f"rank {s.slowest_rank} {fmt.ms(s.slowest_ms)} ms")
        if s.temp_c is not None:
            cell("temp", unit(s.temp_c, "°C"))
        if s.power_w is not None:
            cell("power", unit(s.power_w, " W"))
        cell("CPU", pct(s.cpu_pct))
        cell("RSS", gb(s.rss_mb, None))
        update_if_changed(self, Text("   ").join(parts))


class SysTable(Static):
    """Every rank of the newest sys record: process, data wait, ms/step and its device."""

    table: Table | None = None

    def show(self, rec: SysRecord | None) -> None:
        if rec is None:
            self.update(Text("no system metrics in this run (runtime.sys_every: 0, or older run)"))
            return
        self.border_title = f"machine · step {rec.step:,} · {len(rec.ranks)} rank(s)"
        t = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
        cols = (
            "rank",
            "CPU",
            "RSS",
            "wait",
            "ms/step",
            "device",
            "util",
            "memory",
            "temp",
            "power",
        )
        for col in cols:
            t.add_column(col, justify="left" if col == "device" else "right", no_wrap=True)
        for r in rec.ranks:
            dv = r.devices[0] if r.devices else None
            t.add_row(
                str(r.rank),
                pct(r.cpu_pct),
                gb(r.rss_mb, None, ""),
                pct(r.data_wait, 100),
                fmt.ms(r.ms_per_step),
                f"{DEVICE_NAMES.get(dv.type, dv.type)} {dv.index}" if dv else fmt.DASH,
                pct(dv.util_pct) if dv else fmt.DASH,
                gb(dv.mem_used_mb, dv.mem_total_mb, "") if dv else fmt.DASH,
                unit(dv.temp_c, "°C") if dv else fmt.DASH,
                unit(dv.power_w, " W") if dv else fmt.DASH,
            )
        self.table = t
        self.update(t)
