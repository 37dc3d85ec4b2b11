"""Pictures in the TUI — sample strips on the dashboard, zoom/pan, N2N_IMAGES."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from tui_helpers import FIXTURES, SIZE, text_of, wait_for

from n2n_tui.app import main
from n2n_tui.images import crop_box, mode_from_env
from n2n_tui.screens.dashboard import DashboardScreen
from n2n_tui.screens.pictures import PicturesScreen
from n2n_tui.widgets.images import Picture, SamplePanel

RUN = "00004-sampled"


@pytest.fixture
def sampled(results: Path) -> Path:
    dest = results / RUN
    shutil.copytree(FIXTURES / "pictures" / "00000-sampled", dest)
    return Path("results") / RUN


async def _replayed(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.screen.replay.done)
    await wait_for(pilot, lambda: pilot.app.screen.query_one(SamplePanel).has_samples)
    await pilot.pause(0.4)


def test_dashboard_shows_the_newest_sample_strip_in_half_blocks(snap_compare, make_app, sampled):
    app = make_app(replay=sampled, speed=0, images="halfblock")
    assert snap_compare(app, terminal_size=SIZE, run_before=_replayed)


async def test_sample_history_steps_back_and_follows_again(make_app, sampled):
    app = make_app(replay=sampled, speed=0, images="halfblock")
    async with app.run_test(size=SIZE) as pilot:
        await _replayed(pilot)
        panel = app.screen.query_one(SamplePanel)
        assert panel.steps == [1000, 2000, 3000] and panel.current == 3000
        image = panel.query_one(".picture-image")
        assert type(image).__name__ == "HalfcellImage" and image.image.size == (192, 64)
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert panel.current == 1000 and panel.pinned == 1000
        assert "step 1,000 (1/3" in str(panel.border_title)
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert panel.current == 3000 and panel.pinned is None  # following the newest again


async def test_replay_shows_only_samples_up_to_its_position(make_app, sampled):
    app = make_app(replay=sampled, speed=0, images="halfblock")
    async with app.run_test(size=SIZE) as pilot:
        await _replayed(pilot)
        panel = app.screen.query_one(SamplePanel)
        panel.poll(2500)
        assert panel.steps == [1000, 2000] and panel.current == 2000
        panel.poll(500)
        assert not panel.has_samples


def test_crop_box_stays_inside_the_image():
    assert crop_box((100, 50), (40, 20), (50, 25)) == (30, 15, 70, 35)
    assert crop_box((100, 50), (40, 20), (0, 0)) == (0, 0, 40, 20)
    assert crop_box((100, 50), (40, 20), (1000, 1000)) == (60, 30, 100, 50)
    assert crop_box((100, 50), (400, 200), (10, 10)) == (0, 0, 100, 50)


async def test_zoom_and_pan_move_the_same_crop_in_every_pane(make_app, tmp_path):
    a = tmp_path / "noisy.png"
    b = tmp_path / "denoised.png"
    Image.effect_noise((400, 300), 40).convert("RGB").save(a)
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(b)
    app = make_app(images="halfblock")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        app.push_screen(PicturesScreen("two", [("noisy", a), ("denoised", b)]))
        await pilot.pause(0.2)
        screen = app.screen
        await pilot.press("z")
        x0, y0, x1, y1 = screen.box
        pane = screen.query(Picture).first()
        # 1:1 with half-blocks: a pixel per column, two per row.
        assert (x1 - x0, y1 - y0) == (pane.content_size.width, 2 * (pane.content_size.height - 1))
        assert abs((x0 + x1) / 2 - 200) <= 1 and abs((y0 + y1) / 2 - 150) <= 1
        await pilot.press("right")
        assert screen.box[0] > x0 and screen.box[1] == y0
        await pilot.press(*["down"] * 20)
        assert screen.box[3] == 300  # clamped at the bottom edge
        await pilot.press("up")
        assert screen.box[3] < 300  # one press back, nothing piled up past the edge
        crops = [p.query_one(".picture-image").image.size for p in screen.query(Picture)]
        assert crops[0] == crops[1] == (x1 - x0, y1 - y0)
        await pilot.press("plus")
        assert screen.box[2] - screen.box[0] == (x1 - x0) // 2


async def test_pictures_off_describes_the_image_in_words(make_app, sampled):
    app = make_app(replay=sampled, speed=0, images="off")
    async with app.run_test(size=SIZE) as pilot:
        await _replayed(pilot)
        panel = app.screen.query_one(SamplePanel)
        assert not panel.query(".picture-image")
        text = str(panel.query_one(".picture-text").render())
        assert "192×64 px" in text and "pictures are off" in text


def test_n2n_images_is_checked(monkeypatch, capsys):
    monkeypatch.setenv("N2N_IMAGES", "Sixel")
    assert mode_from_env() == "sixel"
    monkeypatch.setenv("N2N_IMAGES", "ascii-art")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: N2N_IMAGES=ascii-art: expected one of halfblock, sixel, kitty, off"]


async def test_dashboard_reads_sys_records_of_two_ranks_on_two_devices(make_app, sampled):
    from tui_helpers import text_of

    from n2n_tui.widgets.dashboard import SysLine, SysTable

    app = make_app(replay=sampled, speed=0, images="off")
    async with app.run_test(size=SIZE) as pilot:
        await _replayed(pilot)
        v = app.screen.feed.copy_values()
        assert v.sys is not None and v.sys.step == 3000
        assert [(r.rank, r.devices[0].index) for r in v.sys.ranks] == [(0, 0), (1, 1)]
        line = text_of(app.screen.query_one(SysLine))
        assert "GPU×2 88%" in line and "slowest rank 1 38.9 ms" in line and "wait 19%" in line
        await pilot.press("m")
        assert app.screen.has_class("-machine")
        table = app.screen.query_one(SysTable).table
        rows = [list(col.cells) for col in table.columns]
        assert rows[0] == ["0", "1"] and rows[5] == ["GPU 0", "GPU 1"]
        assert rows[9] == ["402 W", "342 W"]


async def test_compare_shows_each_runs_system_numbers(make_app, sampled):
    from n2n_tui.screens.compare import CompareScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        app.push_screen(CompareScreen([sampled, Path("results/00000-gauss-baseline")]))
        screen = app.screen
        await wait_for(pilot, lambda: screen.feeds[0].copy_values().sys is not None)
        await pilot.pause(0.6)
        from n2n_tui.widgets.common import RunsTable

        table = screen.query_one(RunsTable)
        first = table.get_row(RUN)
        assert [str(c) for c in first[-3:]] == ["88%", "19%", "38.9 ms (r1)"]
        assert [str(c) for c in table.get_row("00000-gauss-baseline")[-3:]] == ["—"] * 3


async def test_live_dashboard_picks_up_a_new_validation_sample(make_app, sampled):
    app = make_app(images="halfblock")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.rows_loaded)
        app.push_screen(DashboardScreen(sampled))
        await pilot.pause()
        panel = app.screen.query_one(SamplePanel)
        await wait_for(pilot, lambda: panel.current == 3000)
        newer = sampled / "samples" / "step-00004000-astronaut.png"
        Image.new("RGB", (192, 64), (200, 30, 30)).save(newer)
        await wait_for(pilot, lambda: panel.current == 4000)
        assert panel.query_one(".picture-image").image.getpixel((0, 0)) == (200, 30, 30)


async def test_two_marked_snapshots_denoise_one_image_side_by_side(make_app, results, monkeypatch):
    from n2n_tui.models.procs import CoreResult
    from n2n_tui.screens.snapshots import SnapshotsScreen

    calls = []

    def fake_run_core(args, timeout=None):  # what `n2n-core infer` leaves behind
        calls.append(args)
        out = Path(args[args.index("--out") + 1])
        Image.new("RGB", (120, 80), (len(calls) * 60, 0, 0)).save(out)
        return CoreResult(args, 0, "", "")

    monkeypatch.setattr("n2n_tui.models.snapshots.run_core", fake_run_core)
    run = results / "00000-gauss-baseline"
    noisy = results.parent / "noisy.png"
    Image.new("RGB", (120, 80), (9, 9, 9)).save(noisy)
    app = make_app(images="halfblock")
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(SnapshotsScreen(run))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.snaps) == 4)
        await pilot.press("space", "down", "space")
        assert screen.marked == {"snapshot-00005000.safetensors", "snapshot-00010000.safetensors"}
        await pilot.press("i")
        app.screen.query_one("Input").value = str(noisy)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PicturesScreen))
        await pilot.pause(0.2)
        assert [c[2] for c in calls] == [
            str(run / "snapshots" / "snapshot-00005000.safetensors"),
            str(run / "snapshots" / "snapshot-00010000.safetensors"),
        ]
        panes = list(app.screen.query(Picture))
        assert [str(p.border_title) for p in panes] == [
            "input · noisy.png",
            "denoised · snapshot-00005000.safetensors",
            "denoised · snapshot-00010000.safetensors",
        ]
        outs = [Path(c[c.index("--out") + 1]) for c in calls]
        assert outs[0] == run / "samples" / "infer-noisy-snapshot-00005000.png"


def _second_image(sampled: Path, size=(192, 64)) -> None:
    """A second validation image at every step: coffee beside astronaut."""
    for step in (1000, 2000, 3000):
        Image.new("RGB", size, (10, step // 20, 90)).save(
            sampled / "samples" / f"step-{step:08d}-coffee.png"
        )


async def test_every_sample_image_of_a_step_can_be_shown(make_app, sampled):
    _second_image(sampled)
    app = make_app(replay=sampled, speed=0, images="halfblock")
    async with app.run_test(size=SIZE) as pilot:
        await _replayed(pilot)
        panel = app.screen.query_one(SamplePanel)
        assert panel.current_path().name == "step-00003000-astronaut.png"
        assert "image 1/2 astronaut" in str(panel.border_title)
        await pilot.press("greater_than_sign")
        assert panel.current_path().name == "step-00003000-coffee.png"
        assert "image 2/2 coffee" in str(panel.border_title)
        pixel = panel.query_one(".picture-image").image.getpixel((0, 0))
        assert pixel == (10, 150, 90)
        await pilot.press("left_square_bracket")  # an older step keeps the image
        assert panel.current_path().name == "step-00002000-coffee.png"
        await pilot.press("greater_than_sign")  # wraps around
        assert panel.current_path().name == "step-00002000-astronaut.png"
        await pilot.press("less_than_sign")
        assert panel.current_path().name == "step-00002000-coffee.png"


async def test_p_opens_the_strip_at_1_to_1_and_z_pans_on_the_dashboard(make_app, sampled):
    big = sampled / "samples" / "step-00003000-astronaut.png"
    Image.effect_noise((600, 200), 40).convert("RGB").save(big)  # wider than the pane
    app = make_app(replay=sampled, speed=0, images="halfblock")
    async with app.run_test(size=SIZE) as pilot:
        await _replayed(pilot)
        panel = app.screen.query_one(SamplePanel)
        await pilot.press("z")  # in place: a 1:1 crop of the strip
        x0, y0, x1, y1 = panel.box
        shown = panel.query_one(".picture-image").image.size
        assert shown == (x1 - x0, y1 - y0) and x1 - x0 == panel.view_pixels()[0] < 600
        await pilot.press("l")
        assert panel.box[0] > x0
        await pilot.press("z")
        assert panel.box is None and panel.query_one(".picture-image").image.size == (600, 200)
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PicturesScreen) and screen.zoomed
        await pilot.pause(0.2)
        pane = screen.query(Picture).first()
        x0, y0, x1, y1 = screen.box
        assert pane.query_one(".picture-image").image.size == (x1 - x0, y1 - y0)
        assert x1 - x0 == pane.content_size.width < 600  # one pixel a column: 1:1
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_the_browser_view_opens_the_real_image_in_a_tab(make_app, sampled, monkeypatch):
    """Served (--serve), the page's terminal draws half-blocks: o sends the picture itself
    to the browser, which opens it in a tab at full resolution."""
    from n2n_tui.app import N2NApp

    delivered = []
    app = make_app(replay=sampled, speed=0, images="halfblock")
    async with app.run_test(size=SIZE) as pilot:
        await _replayed(pilot)
        assert app.screen.check_action("open_picture", ()) is False  # a terminal: no such key
        monkeypatch.setattr(N2NApp, "is_web", property(lambda self: True))
        monkeypatch.setattr(
            N2NApp, "deliver_binary", lambda self, path, **kw: delivered.append((path, kw))
        )
        app.screen.refresh_bindings()
        await pilot.press("o")
        ((path, kw),) = delivered
        assert path.name == "step-00003000-astronaut.png" and path.is_file()
        assert kw["open_method"] == "browser" and kw["mime_type"] == "image/png"
        await pilot.press("p")  # the strip's own screen offers it too
        await pilot.pause(0.2)
        await pilot.press("o")
        assert [p.name for p, _ in delivered] == ["step-00003000-astronaut.png"] * 2


async def test_a_run_is_compared_with_a_builtin_model_on_one_image(
    make_app, results, shipped_models, monkeypatch
):
    """The built-in models are listed below a run's snapshots with their recorded score;
    marked beside the run's final snapshot, both denoise the same image side by side, and
    validating one shows the result without storing it in the run."""
    from n2n_core.pretrained import HOLDOUT, read_model
    from n2n_tui.models.procs import CoreResult
    from n2n_tui.screens.snapshots import SnapshotsScreen

    calls = []

    def fake_run_core(args, timeout=None):  # what `n2n-core infer` / `validate` leave behind
        calls.append(args)
        if args[0] == "validate":
            return CoreResult(args, 0, '{"psnr": 29.5, "input_psnr": 20.2, "images": 3}', "")
        out = Path(args[args.index("--out") + 1])
        Image.new("RGB", (120, 80), (len(calls) * 60, 0, 0)).save(out)
        return CoreResult(args, 0, "", "")

    monkeypatch.setattr("n2n_tui.models.snapshots.run_core", fake_run_core)
    monkeypatch.setattr("n2n_tui.screens.snapshots.run_core", fake_run_core)
    run = results / "00000-gauss-baseline"
    metrics = (run / "metrics.jsonl").read_bytes()
    noisy = results.parent / "noisy.png"
    Image.new("RGB", (120, 80), (9, 9, 9)).save(noisy)
    app = make_app(images="halfblock")
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(SnapshotsScreen(run))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.snaps) == 6)
        names = [s.name for s in screen.snaps]
        assert names[-2:] == ["builtin:photo", "builtin:quickstart"]
        photo = screen.snaps[-2]
        assert photo.validated.dataset == HOLDOUT
        assert photo.validated.psnr == read_model("photo").score(HOLDOUT).psnr
        screen.query_one("RunsTable").move_cursor(row=3)  # final.safetensors
        await pilot.press("space", "down", "space")
        assert screen.marked == {"final.safetensors", "builtin:photo"}
        await pilot.press("i")
        app.screen.query_one("Input").value = str(noisy)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PicturesScreen))
        await pilot.pause(0.2)
        assert [c[2] for c in calls] == [
            str(run / "snapshots" / "final.safetensors"),
            "builtin:photo",
        ]
        panes = list(app.screen.query(Picture))
        assert [str(p.border_title) for p in panes] == [
            "input · noisy.png",
            "denoised · final.safetensors",
            "denoised · builtin:photo",
        ]
        assert Path(calls[1][calls[1].index("--out") + 1]) == (
            run / "samples" / "infer-noisy-builtin-photo.png"
        )
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("v")
        app.screen.query_one("Input").value = "builtin:photos-val"
        await pilot.press("enter")
        result = screen.query_one("#snap-result")
        await wait_for(pilot, lambda: "29.50" in text_of(result))
        assert calls[-1][:3] == ["validate", "--snapshot", "builtin:photo"]
        assert "not this run's model: not stored" in text_of(result)
    assert (run / "metrics.jsonl").read_bytes() == metrics
