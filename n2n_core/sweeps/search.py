"""A search sweep's study: Optuna chooses each point, the scheduler reports and prunes.

The study lives in the sweep folder (``study.journal``, Optuna's journal file
storage: an append-only log every process can replay, on a shared file system
too), so ``sweep resume`` continues the same study. Each point is one trial;
``sweep.json`` holds the trial's number beside the point, and the run folder is
named ``NAME-tNNN`` for it.

The scheduler, not the training process, talks to the study: after each round
it reads the new validation records of every running point (:mod:`runs.tail`),
reports them to the point's trial and asks the pruner; a rejected trial is told
``PRUNED`` first (so the decision survives a crash) and its run is then stopped
through the backend's one verified stop. When a point's run ends the study is
told how (its objective, or ``FAIL``).

What a crash can leave, and how :meth:`Search.prepare` settles it on resume:

- a trial asked but no point recorded: its run folder, if it was made, is
  adopted (found by name, sweep and params); else one is made from the trial's
  params. The trial is neither lost nor asked again.
- a point recorded but not started: it is ``pending``; the backend starts it.
- a run that ended with its trial not told: told now, from its run folder.
- a trial told ``PRUNED`` whose run was not (yet) stopped: stopped, and the
  point ends ``pruned``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from n2n_core.errors import UserError
from n2n_core.runs.records import ValRecord
from n2n_core.runs.summary import summarize_run
from n2n_core.runs.tail import MetricsTail
from n2n_core.sweeps.space import (
    distributions,
    grid_points,
    read_space,
    sampled_preset,
)
from n2n_core.sweeps.store import (
    Sweep,
    add_point,
    find_trial_run,
    point_dir,
    record_point,
    write_sweep,
)

STUDY_FILE = "study.journal"
STUDY_NAME = "n2n"
SAMPLERS = ("tpe", "random", "grid")
OBJECTIVES = ("best_psnr", "last_psnr")  # or eval:DATASET
EVAL = "eval:"
PRUNERS = ("none", "median", "asha")
# Parameter importances are computed once this many trials have completed: fewer say
# nothing about which setting mattered.
MIN_IMPORTANCE_TRIALS = 4
# A sampler that keeps proposing points the preset rejects is given up on after this many
# in a row (the space allows them; the sweep says so and stops asking).
MAX_REJECTED = 20


def optuna_module():
    try:
        import optuna
    except ImportError:
        raise UserError(
            "--search needs Optuna: pip install 'n2n[search]' (or pip install optuna)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def journal_path(sweep_dir: Path) -> Path:
    path = Path(sweep_dir) / STUDY_FILE
    if os.path.islink(path) or (path.exists() and not path.is_file()):
        raise UserError(f"{path}: not a regular file; refusing to open the study through it")
    return path


def _sampler(optuna, cfg: dict[str, Any], told: int):
    # A reopened study's sampler starts a fresh random stream: seeded past the trials
    # already asked, a resumed search does not draw its first points again.
    seed = None if cfg.get("seed") is None else int(cfg["seed"]) + told
    if cfg["sampler"] == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=int(cfg["startup"]))
    return optuna.samplers.RandomSampler(seed=seed)  # grid: every point is enqueued


def _pruner(optuna, cfg: dict[str, Any]):
    warmup = int(cfg.get("prune_warmup", 0))
    if cfg["prune"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(cfg.get("prune_startup", 2)), n_warmup_steps=warmup
        )
    if cfg["prune"] == "asha":
        # No bootstrap_count: Optuna cannot suspend a trial, so a trial waiting for
        # competitors at its rung would be pruned, the first trials of a search among them.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup if warmup > 0 else "auto")
    return optuna.pruners.NopPruner()


def open_study(sweep_dir: Path, cfg: dict[str, Any]):
    """The sweep's study, made on first use (a grid search's points enqueued in order)."""
    optuna = optuna_module()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal_path(sweep_dir))))
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    told = 0
    if STUDY_NAME in names:
        told = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        sampler=_sampler(optuna, cfg, told),
        pruner=_pruner(optuna, cfg),
        direction="maximize",
        load_if_exists=True,
    )
    if cfg["sampler"] == "grid":
        # Every combination enqueued once, in order (those a killed enqueue left out too):
        # ask() takes them first in, first out.
        have = [t.system_attrs.get("fixed_params") or t.params for t in study.trials]
        for params in grid_points(read_space(cfg["space"]))[: int(cfg["trials"])]:
            if params not in have:
                study.enqueue_trial(params)
    return study


def check_objective(objective: str) -> str:
    """``best_psnr``, ``last_psnr`` or ``eval:DATASET`` (a folder of clean images, or a
    built-in set, that ``n2n-core evaluate`` scores each finished trial's final snapshot on)."""
    if objective in OBJECTIVES:
        return objective
    if objective.startswith(EVAL):
        dataset = objective[len(EVAL) :]
        if not dataset:
            raise UserError("--objective eval:DATASET: the data set is missing")
        if not dataset.startswith("builtin:") and not Path(dataset).is_dir():
            raise UserError(f"--objective {objective}: folder {dataset} not found")
        return objective
    raise UserError(f"--objective {objective}: one of best_psnr, last_psnr, eval:DATASET")


def objective_of(run_dir: Path, objective: str) -> float | None:
    """A finished trial's value: its best or last validation PSNR, or for ``eval:DATASET`` the
    mean PSNR of its evaluation's best snapshot over the cells of that data set."""
    from n2n_core.runs.state import best_mean

    s = summarize_run(run_dir)
    if objective.startswith(EVAL):
        dataset = objective[len(EVAL) :]
        best = best_mean(
            (e.snapshot, e.psnr) for e in s.evals if e.dataset == dataset and e.psnr is not None
        )
        value = None if best is None else best[1]
    else:
        value = s.best_psnr if objective == "best_psnr" else s.last_psnr
    return None if value is None or not math.isfinite(value) else float(value)


class Search:
    """The study's side of a search sweep's scheduler (see the module's docstring)."""

    def __init__(self, sweep_dir: Path, sweep: Sweep, log):
        self.sweep_dir, self.sweep, self.log = Path(sweep_dir), sweep, log
        self.cfg = sweep.search or {}
        self.space = read_space(self.cfg["space"])
        self.trials = int(self.cfg["trials"])
        self.objective = str(self.cfg.get("objective", "best_psnr"))
        self.optuna = optuna_module()
        self.study = open_study(self.sweep_dir, self.cfg)
        self.dists = distributions(self.space)
        self.tails: dict[int, MetricsTail] = {}
        self.pruning: set[int] = set()  # points told PRUNED whose run is being stopped
        self.rejected = 0
        self.given_up = False
        self._trials: list = []
        self._refresh()

    # -- the study -------------------------------------------------------------------

    def _refresh(self) -> None:
        # One read of the journal per round (not one per point): trials are numbered
        # from 0, in the order they were asked.
        self._trials = self.study.get_trials(deepcopy=False)

    def _state(self, number: int):
        return self._trials[number].state

    def _trial(self, number: int):
        trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number
        )
        return self.optuna.trial.Trial(self.study, trial_id)

    def _running(self, number: int) -> bool:
        return self._state(number) == self.optuna.trial.TrialState.RUNNING

    def _pruned(self, number: int) -> bool:
        return self._state(number) == self.optuna.trial.TrialState.PRUNED

    # -- resume ----------------------------------------------------------------------

    def prepare(self) -> None:
        """Settle what a killed scheduler left (after the backend has reconciled the points
        with their run folders; see the module's docstring)."""
        TrialState = self.optuna.trial.TrialState
        recorded = {p.trial for p in self.sweep.points if p.trial is not None}
        for t in self.study.trials:
            if t.state != TrialState.RUNNING or t.number in recorded:
                continue
            params = {k: t.params[k] for k in self.space if k in t.params}
            try:
                preset = sampled_preset(self.sweep.base, params)
            except UserError as e:
                self.study.tell(t.number, state=TrialState.FAIL)
                self.log(f"trial {t.number}: asked before the scheduler stopped, rejected: {e}")
                continue
            run = find_trial_run(self.sweep_dir, self.sweep, t.number, params)
            if run is not None:
                p = record_point(self.sweep_dir, self.sweep, params, run, t.number)
                self.log(
                    f"trial {t.number}: run {run} made before the scheduler stopped; point {p.index}"
                )
            else:
                p = add_point(self.sweep_dir, self.sweep, params, preset, t.number)
                self.log(f"trial {t.number}: asked before the scheduler stopped; point {p.index}")
        # Ended runs are told (or marked pruned) now; a running point whose trial was told
        # PRUNED is stopped at the first round, when the backend follows it.
        self._settle()
        write_sweep(self.sweep_dir, self.sweep)

    # -- each round ------------------------------------------------------------------

    def after_training(self, p) -> list[str] | None:
        """What a point runs once its training finished, in the same slot or job: for an
        ``eval:DATASET`` objective, ``n2n-core evaluate`` of its run (the eval records it
        appends are the trial's value); None otherwise."""
        if not self.objective.startswith(EVAL):
            return None
        from n2n_core.config.preset import load_preset
        from n2n_core.runs.layout import RunPaths

        run_dir = point_dir(self.sweep_dir, p)
        device = load_preset(RunPaths(run_dir).preset).runtime.device
        return [
            "evaluate",
            "--dataset-dir",
            self.objective[len(EVAL) :],
            "--device",
            device,
            "--",
            str(run_dir.resolve()),
        ]

    def more(self) -> bool:
        """Whether trials are left to ask."""
        return not self.given_up and len(self.sweep.points) < self.trials

    def fill(self, room: int) -> None:
        """Ask the study for up to ``room`` new points (never more than ``trials`` in all);
        each is validated by the preset schema before its run folder is made."""
        while room > 0 and self.more():
            trial = self.study.ask(self.dists)
            params = {k: trial.params[k] for k in self.space}
            try:
                preset = sampled_preset(self.sweep.base, params)
            except UserError as e:
                self.study.tell(trial.number, state=self.optuna.trial.TrialState.FAIL)
                self.rejected += 1
                self.log(f"trial {trial.number}: rejected by the preset ({e})")
                if self.rejected >= MAX_REJECTED:
                    self.given_up = True
                    self.log(
                        f"{MAX_REJECTED} sampled points in a row were rejected; no more trials "
                        "asked (narrow the --space)"
                    )
                continue
            self.rejected = 0
            p = add_point(self.sweep_dir, self.sweep, params, preset, trial.number)
            self.log(f"trial {trial.number}: point {p.index} ({_params(params)}), run {p.run}")
            room -= 1

    def observe(self, backend) -> None:
        """Report new validations of running points and prune; tell ended trials."""
        self._refresh()
        for p in self.sweep.points:
            if p.trial is not None and p.status == "running":
                self._report(p, backend)
        self._settle()

    def _settle(self) -> None:
        """Points whose run ended: ``pruned`` when their trial was, else their trial told."""
        self._refresh()
        for p in self.sweep.points:
            if p.trial is None or p.status == "running":
                continue
            if p.index in self.pruning or self._pruned(p.trial):
                self.pruning.discard(p.index)
                self.tails.pop(p.index, None)
                if p.status != "pruned":
                    p.status, p.value = "pruned", self._trials[p.trial].value
                    write_sweep(self.sweep_dir, self.sweep)
                    self.log(f"point {p.index}: pruned (trial {p.trial}), run {p.run}")
            elif p.status in ("finished", "failed") and self._running(p.trial):
                self.tails.pop(p.index, None)
                self._tell(p)
            elif p.value is None and self._trials[p.trial].value is not None:
                # Told before a crash, its value not yet in sweep.json.
                p.value = self._trials[p.trial].value
                write_sweep(self.sweep_dir, self.sweep)

    def _report(self, p, backend) -> None:
        if p.index in self.pruning:
            return
        if self._pruned(p.trial):  # told before a crash; its run was not stopped
            self._prune(p, backend)
            return
        if not self._running(p.trial):
            return
        tail = self.tails.get(p.index)
        if tail is None:
            tail = self.tails[p.index] = MetricsTail(point_dir(self.sweep_dir, p) / "metrics.jsonl")
        chunk = tail.read_new()
        vals = [r for r in chunk.items if isinstance(r, ValRecord) and r.psnr is not None]
        if not vals:
            return
        trial = self._trial(p.trial)
        seen = self._trials[p.trial].intermediate_values
        for r in vals:
            if r.step not in seen and math.isfinite(r.psnr):
                trial.report(float(r.psnr), int(r.step))
        if trial.should_prune():
            self.study.tell(p.trial, state=self.optuna.trial.TrialState.PRUNED)
            self._refresh()
            self._prune(p, backend)

    def _prune(self, p, backend) -> None:
        self.pruning.add(p.index)
        value = self._trials[p.trial].value
        shown = "—" if value is None else f"{value:.2f} dB"
        self.log(f"point {p.index}: trial {p.trial} pruned at {shown}; stopping run {p.run}")
        if backend is not None:
            backend.prune(p.index)

    def _tell(self, p) -> None:
        TrialState = self.optuna.trial.TrialState
        value = (
            objective_of(point_dir(self.sweep_dir, p), self.objective)
            if p.status == "finished"
            else None
        )
        if value is None:
            self.study.tell(p.trial, state=TrialState.FAIL)
            why = "failed" if p.status == "failed" else f"no {self.objective}"
            self.log(f"trial {p.trial}: told failed ({why}), run {p.run}")
        else:
            self.study.tell(p.trial, value)
            p.value = value
            self.log(f"trial {p.trial}: told {value:.2f} dB ({self.objective}), run {p.run}")
        self._refresh()
        self._update_importances()
        write_sweep(self.sweep_dir, self.sweep)

    def _update_importances(self) -> None:
        complete = [t for t in self._trials if t.state == self.optuna.trial.TrialState.COMPLETE]
        cfg = self.sweep.search
        cfg["completed"] = len(complete)
        if len(complete) < MIN_IMPORTANCE_TRIALS:
            return
        try:
            imp = self.optuna.importance.get_param_importances(self.study)
        except (RuntimeError, ValueError) as e:  # e.g. every completed trial drew the same point
            self.log(f"parameter importances not computed: {e}")
            return
        cfg["importances"] = {k: round(float(v), 4) for k, v in imp.items()}
        cfg["importances_of"] = len(complete)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in params.items())


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
