"""A search's space, its one-line errors, and how a resumed scheduler settles what a killed
one left between the study and sweep.json (fake run folders: nothing trains here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, n2n_in_process

from n2n_core.config.preset import load_preset
from n2n_core.runs.folders import prepare_run
from n2n_core.runs.info import update_run_info
from n2n_core.runs.records import ValRecord
from n2n_core.runs.writer import MetricsWriter
from n2n_core.sweeps.space import grid_points, parse_space, plan_search
from n2n_core.sweeps.store import (
    create_search_sweep,
    read_sweep,
    sweep_ref,
    trial_run_name,
    write_sweep,
)
from n2n_core.sweeps.view import read_view, search_markdown

optuna = pytest.importorskip("optuna")


class _Log(list):
    def __call__(self, msg: str) -> None:
        self.append(msg)


def _search_sweep(tmp_path: Path, preset: Path, space: list[str], **cfg) -> Path:
    plan = plan_search(str(preset), space, [])
    search = {
        "sampler": "random",
        "trials": 4,
        "space": {k: d.text for k, d in plan.space.items()},
        "objective": "best_psnr",
        "seed": 0,
        "startup": 10,
        "prune": "none",
        "prune_warmup": 0,
        "prune_startup": 2,
        "argv": ["n2n-core", "sweep"],
        **cfg,
    }
    return create_search_sweep(plan, tmp_path / "res", "s", "local", None, None, search)


def _finish(run_dir: Path, psnrs: list[float]) -> None:
    """What a run that trained to the end leaves: its validations and status finished."""
    with MetricsWriter(run_dir / "metrics.jsonl") as w:
        for i, p in enumerate(psnrs):
            w.write(ValRecord(step=i + 1, time=1.0 + i, psnr=p, input_psnr=20.0, dataset="v"))
    update_run_info(run_dir, status="finished", exit_code=0)


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--space", "train.lr=gauss(1,2)"], ["--space train.lr=gauss(1,2)", "loguniform(a,b)"]),
        (["--space", "train.lr=loguniform(0,1e-2)"], ["loguniform needs bounds above 0"]),
        (["--space", "train.lr=uniform(1e-2,1e-4)"], ["must be below the high bound"]),
        (["--space", "train.batch=int(1.5,4)"], ["not a whole number"]),
        (["--space", "train.batch=int(1,two)"], ["'two' is not a number"]),
        (["--space", "train.nosuch=uniform(0,1)"], ["--space train.nosuch", "unknown key"]),
        (["--space", "train.batch=int(0,4)"], ["--space train.batch=0"]),
        (["--space", "train.lr=choice(1e-3,1e-3)"], ["a choice is listed twice"]),
        (["--space", "train.lr"], ["expected KEY=DIST"]),
        ([], ["give the space to search"]),
        (["--space", "runtime.nproc=int(1,2)"], ["same devices"]),
        (
            ["--space", "train.lr=uniform(0.1,0.2)", "--search", "grid"],
            ["a grid search takes choice(...) values only"],
        ),
        (
            ["--space", "train.lr=choice(1e-3,2e-3)", "--search", "grid", "--trials", "3"],
            ["--trials 3: the grid has 2 points"],
        ),
        (["--space", "train.lr=uniform(0.1,0.2)", "--grid", "train.batch=1,2"], ["--grid"]),
        (["--space", "train.lr=uniform(0.1,0.2)", "--prune-warmup", "-1"], ["--prune-warmup"]),
        (["--space", "train.lr=uniform(0.1,0.2)", "--objective", "loss"], ["--objective loss"]),
        (
            ["--space", "train.lr=uniform(0.1,0.2)", "--objective", "eval:/no/such/set"],
            ["--objective eval:/no/such/set", "not found"],
        ),
    ],
)
def test_bad_space_is_one_error_line_and_nothing_written(make_preset, tmp_path, flags, needles):
    res = tmp_path / "res"
    search = [] if "--search" in flags else ["--search", "tpe", "--trials", "2"]
    r = n2n_in_process("sweep", make_preset(), *search, *flags, "--results-dir", res)
    assert_user_error(r, *needles)
    assert not res.exists()


def test_search_flags_need_search_and_trials(make_preset, tmp_path):
    preset = make_preset()
    r = n2n_in_process("sweep", preset, "--space", "train.lr=uniform(0.1,0.2)")
    assert_user_error(r, "--space: only with --search")
    r = n2n_in_process(
        "sweep", preset, "--search", "random", "--space", "train.lr=uniform(0.1,0.2)"
    )
    assert_user_error(r, "--trials N is missing")


def test_space_kinds_and_a_choice_grid_in_the_order_written():
    space = parse_space(
        ["train.lr=loguniform(1e-4, 1e-2)", "train.batch=int(1,4)", "noise.type=choice(a,b)"]
    )
    assert (space["train.lr"].kind, space["train.lr"].low, space["train.lr"].high) == (
        "loguniform",
        1e-4,
        1e-2,
    )
    assert space["train.batch"].low == 1 and isinstance(space["train.batch"].low, int)
    grid = grid_points(parse_space(["train.lr=choice(1e-3,3e-4)", "train.batch=choice(2,4)"]))
    assert grid == [
        {"train.lr": 1e-3, "train.batch": 2},
        {"train.lr": 1e-3, "train.batch": 4},
        {"train.lr": 3e-4, "train.batch": 2},
        {"train.lr": 3e-4, "train.batch": 4},
    ]


def test_resume_settles_every_crash_window(make_preset, tmp_path):
    """Killed (1) after ask() before the point was recorded, with and without its run folder
    made; (2) after the run ended, before tell(); (3) after a PRUNED tell, before the point
    was marked. Each trial is kept, none asked twice, none run again."""
    from n2n_core.sweeps.search import Search, open_study
    from n2n_core.sweeps.space import distributions, read_space

    sweep_dir = _search_sweep(
        tmp_path, make_preset(), ["train.lr=loguniform(1e-4,1e-2)", "train.batch=int(1,4)"]
    )
    sweep = read_sweep(sweep_dir)
    log = _Log()
    search = Search(sweep_dir, sweep, log)
    search.fill(2)  # trials 0 and 1: points 0 and 1, recorded
    assert [p.trial for p in sweep.points] == [0, 1]
    _finish(sweep_dir.parent.parent / sweep.points[0].run, [10.0, 12.5, 11.0])  # (2)
    sweep.points[0].status = "finished"  # ended, recorded, trial not told
    write_sweep(sweep_dir, sweep)
    study = open_study(sweep_dir, sweep.search)
    study.tell(1, state=optuna.trial.TrialState.PRUNED)  # (3): told, the point still running
    dists = distributions(read_space(sweep.search["space"]))
    made = study.ask(dists)  # (1a): asked, its run folder made, no point recorded
    params = {k: made.params[k] for k in dists}
    preset = load_preset(Path(sweep_dir.parent.parent / sweep.points[0].run / "preset.yaml"))
    folder = prepare_run(
        preset,
        sweep_dir.parent.parent,
        trial_run_name(sweep, made.number),
        ["n2n-core"],
        queued=True,
        sweep=sweep_ref(sweep_dir),
        params=params,
    )
    bare = study.ask(dists)  # (1b): asked, nothing made

    # The killed scheduler's sweep.json, as the next one reads it (point 1 was "running").
    sweep = read_sweep(sweep_dir)
    sweep.points[1].status = "pending"  # its run never started: the backend says pending
    resumed = Search(sweep_dir, sweep, _Log())
    resumed.prepare()
    after = read_sweep(sweep_dir)
    assert [p.trial for p in after.points] == [0, 1, made.number, bare.number]
    assert after.points[2].run == folder.name  # adopted, not made twice
    assert after.points[3].params == {k: bare.params[k] for k in dists}
    assert [p.status for p in after.points] == ["finished", "pruned", "pending", "pending"]
    trials = open_study(sweep_dir, after.search).trials
    assert trials[0].state == optuna.trial.TrialState.COMPLETE and trials[0].value == 12.5
    assert after.points[0].value == 12.5
    assert trials[1].state == optuna.trial.TrialState.PRUNED
    assert len(trials) == 4 and not resumed.more()  # 4 trials asked: no fifth
    runs = [d.name for d in (sweep_dir.parent.parent).iterdir() if d.name != "sweeps"]
    assert sorted(runs) == sorted(p.run for p in after.points)
    # (4) told, killed before sweep.json had the value: the study's is taken.
    after.points[0].value = None
    write_sweep(sweep_dir, after)
    Search(sweep_dir, read_sweep(sweep_dir), _Log()).prepare()
    assert read_sweep(sweep_dir).points[0].value == 12.5


def test_grid_search_enqueues_each_combination_once_in_order(make_preset, tmp_path):
    from n2n_core.sweeps.search import open_study
    from n2n_core.sweeps.space import distributions, read_space

    sweep_dir = _search_sweep(
        tmp_path,
        make_preset(),
        ["train.lr=choice(1e-3,3e-4)", "train.batch=choice(2,4)"],
        sampler="grid",
        trials=3,
    )
    cfg = read_sweep(sweep_dir).search
    study = open_study(sweep_dir, cfg)
    open_study(sweep_dir, cfg)  # opened again (a resume): nothing enqueued twice
    dists = distributions(read_space(cfg["space"]))
    asked = [study.ask(dists).params for _ in range(3)]
    assert asked == [
        {"train.lr": 1e-3, "train.batch": 2},
        {"train.lr": 1e-3, "train.batch": 4},
        {"train.lr": 3e-4, "train.batch": 2},
    ]
    assert len(study.trials) == 3


def test_importances_once_enough_trials_completed_and_in_status_and_markdown(make_preset, tmp_path):
    from n2n_core.sweeps.search import MIN_IMPORTANCE_TRIALS, Search

    sweep_dir = _search_sweep(
        tmp_path,
        make_preset(),
        ["train.lr=loguniform(1e-4,1e-2)", "train.batch=int(1,4)"],
        trials=5,
    )
    sweep = read_sweep(sweep_dir)
    search = Search(sweep_dir, sweep, _Log())
    search.fill(5)
    for i, p in enumerate(sweep.points):
        # The value follows lr alone: lr is what mattered.
        _finish(sweep_dir.parent.parent / p.run, [20.0 + 1000 * p.params["train.lr"]])
        p.status = "finished"
        if i == MIN_IMPORTANCE_TRIALS - 2:
            search.observe(None)
            view = read_view(sweep_dir)
            assert view.search.importances is None
            assert "needs 4 completed trials (3 so far)" in view.search.importance_line()
    search.observe(None)
    view = read_view(sweep_dir)
    imp = view.search.importances
    assert set(imp) == {"train.lr", "train.batch"} and imp["train.lr"] > imp["train.batch"]
    best = max(sweep.points, key=lambda p: p.params["train.lr"])
    assert view.search.best.index == best.index
    curve = view.search.curve
    assert [t.best for t in curve] == sorted(t.best for t in curve)  # best so far only rises
    js = json.loads(json.dumps(view.to_json()))
    assert js["search"]["best"]["trial"] == best.trial and js["search"]["importances"] == imp
    md = search_markdown(view)
    assert "| parameter | importance |" in md and f"best: trial {best.trial} " in md
    r = n2n_in_process("export", "--markdown", sweep_dir)  # a sweep folder: its runs, its search
    assert r.code == 0, r.err
    assert all(f"| {p.run} | finished |" in r.out for p in sweep.points)
    assert r.out.endswith(md) and "## Search s" in r.out


class _Backend:
    """What the scheduler's pruning asks of a backend: stop this point (recorded here)."""

    def __init__(self):
        self.pruned: list[int] = []

    def prune(self, index: int) -> None:
        self.pruned.append(index)


def _validations(run_dir: Path, psnrs: dict[int, float]) -> None:
    with MetricsWriter(run_dir / "metrics.jsonl") as w:
        for step, p in psnrs.items():
            w.write(ValRecord(step=step, time=float(step), psnr=p, input_psnr=20.0, dataset="v"))


@pytest.mark.parametrize("pruner", ["median", "asha"])
def test_scheduler_reports_validations_and_prunes_after_the_warmup(make_preset, tmp_path, pruner):
    from n2n_core.sweeps.search import Search

    sweep_dir = _search_sweep(
        tmp_path,
        make_preset(),
        ["train.lr=loguniform(1e-4,1e-2)"],
        prune=pruner,
        prune_warmup=10,
        prune_startup=1,
        trials=2,
    )
    results = sweep_dir.parent.parent
    sweep = read_sweep(sweep_dir)
    search, backend = Search(sweep_dir, sweep, _Log()), _Backend()
    search.fill(2)
    first, second = sweep.points
    first.status = second.status = "running"
    _validations(results / first.run, {5: 10.0, 10: 12.0, 15: 14.0})
    search.observe(backend)  # the first trial: reported, never pruned (nothing to beat)
    _finish(results / first.run, [])
    first.status = "finished"
    _validations(results / second.run, {5: 7.0})
    search.observe(backend)  # below the first at step 5, but inside the warm-up
    assert backend.pruned == [] and second.status == "running"
    _validations(results / second.run, {10: 7.0})
    search.observe(backend)
    assert backend.pruned == [second.index]  # stopped through the backend, once
    trials = search.study.trials
    assert trials[0].intermediate_values == {5: 10.0, 10: 12.0, 15: 14.0}
    assert trials[0].state == optuna.trial.TrialState.COMPLETE and trials[0].value == 14.0
    assert trials[1].state == optuna.trial.TrialState.PRUNED and trials[1].value == 7.0
    second.status = "stopped"  # how the stopped run ends
    search.observe(backend)
    assert second.status == "pruned" and second.value == 7.0 and backend.pruned == [1]
    assert read_sweep(sweep_dir).points[1].status == "pruned"
