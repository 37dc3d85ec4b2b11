"""Replay: Escape goes back (never quits unasked), the header tells the replayed moment,
and the timeline is the run's own."""

from __future__ import annotations

from pathlib import Path

from tui_helpers import SIZE, text_of, wait_for

from n2n_core import formatting as fmt
from n2n_core.runs.records import EvalRecord, read_metrics
from n2n_core.runs.writer import MetricsWriter
from n2n_tui.models.follow import RunFollower
from n2n_tui.models.replay import ReplayPlayer
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.runs import RunsScreen
from n2n_tui.widgets.dashboard import ReplayBar, RunHeader


async def test_escape_in_a_replay_goes_back_to_the_run_list(make_app, results: Path):
    app = make_app(replay=Path("results/00000-gauss-baseline"), speed=0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert app.is_running
        await wait_for(pilot, lambda: app.rows_loaded)
        assert len(app.rows) == 4


def evaluated_later(results: Path) -> tuple[Path, float, float]:
    """The recorded finished run, evaluated two hours after it ended: (run, t0, t1) of its
    training records."""
    run = results / "00000-gauss-baseline"
    records = read_metrics(run / "metrics.jsonl")
    times = [r.time for r in records if r.time is not None]
    t0, t1 = min(times), max(times)
    with MetricsWriter(run / "metrics.jsonl") as w:
        w.write(
            EvalRecord(
                step=20000,
                time=t1 + 7200,
                snapshot="final.safetensors",
                dataset="d",
                noise="gaussian",
                level=25.0,
                psnr=31.0,
                input_psnr=20.2,
            )
        )
    return run, t0, t1


def test_a_later_evaluation_does_not_stretch_the_timeline(results: Path):
    run, t0, t1 = evaluated_later(results)
    player = ReplayPlayer(RunFollower(run), speed=0)
    assert (player.t0, player.t1) == (t0, t1)
    player.run(cancelled=lambda: True)
    assert player.feed.values.step == 20000
    assert len(player.feed.copy_values().evals) == 1  # still played, at its place in the file


async def test_the_header_shows_the_replayed_moment(make_app, results: Path):
    run, t0, t1 = evaluated_later(results)
    app = make_app(replay=Path("results/00000-gauss-baseline"), speed=0)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.replay.done)
        header = screen.query_one(RunHeader)
        await wait_for(pilot, lambda: "finished" in text_of(header))
        bar = text_of(screen.query_one(ReplayBar))
        assert f"/ {fmt.duration(t1 - t0)}" in bar  # the run's own length
        screen.action_seek_to(0.5)  # play from the middle, then hold still
        await wait_for(pilot, lambda: not screen.replay.done)
        await pilot.press("space")
        await pilot.pause(0.5)
        text = text_of(header)
        assert "running" in text and "finished" not in text, text
        pos = screen.replay.position()
        v = screen.feed.copy_values()
        took = v.elapsed_s(pos)
        want = took if took is not None else pos - screen.info.started
        assert f"elapsed {fmt.duration(want)}" in text, (text, want)
        assert 0 < v.step < 20000 and f"step {v.step:,} / 20,000" in text
