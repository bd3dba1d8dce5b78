"""The Ray Tune side of a study: Optuna's searcher on the study's storage, and the stopping rule as a scheduler.

:class:`StudySearch` asks the study's space and records trials as :mod:`nas.trial` does;
:class:`EarlyStopScheduler` stops them by :func:`nas.early_stop.decide`.

Design: docs/design.md#nasray_search
"""

from __future__ import annotations

import functools
import logging
import pathlib
import pickle
import shutil

import optuna
from optuna.trial import TrialState
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from .baselines import requeue_failed_baselines
from .config import StudyConfig
from .early_stop import Decision, StopRule
from .replicates import Run, judge
from .sampler import SpaceExhausted
from .schema import DIRECTIONS, START_ATTRS, has_fixed_plan
from .space import define_space
from .storage import fail_stale_trials, study_lock, worker_identity
from .study import make_sampler, queued_count, slots_left, warn_exhausted
from .trial import (
    TrialContext,
    claim,
    ended_elsewhere,
    finish,
    finish_skipped,
    finite_prefix,
    plan_of,
    queued_as,
    recover,
    settle_files,
    skip_reason,
    trial_attrs,
)

__all__ = [
    "EarlyStopScheduler",
    "StudySearch",
    "METRICS_REPORTED",
    "PLAN",
    "SKIP",
    "SNAPSHOT",
    "STUDY_TRIAL",
]

log = logging.getLogger(__name__)

# The study's objectives (nas.schema), as reported to Ray and in Ray's words.
METRICS_REPORTED = ("best_val_acc", "params")
MODES = tuple({"maximize": "max", "minimize": "min"}[d] for d in DIRECTIONS)
STUDY_TRIAL = "study_trial"  # config/result key: the Optuna trial number (names trials/NNNN)
SKIP = "skip"  # config key: True when the trial is over budget or a duplicate
PLAN = "plan"  # config key: the plan's text (a baseline's plan is not in its params)
SEED = "seed"  # config key: the run's training seed (a replicate's own, else the study's)
FIXED = "fixed"  # config/result key: a baseline or a replicate, which the rule never stops
SNAPSHOT = "ray-checkpoint"  # per-epoch checkpoint handed to Ray, inside the trial folder


# --- early stopping ---------------------------------------------------------------------------


class EarlyStopScheduler(FIFOScheduler):
    """Stops Ray trials by :func:`nas.early_stop.decide`: the rule the Optuna backend applies.

    It keeps the learning curve and parameter count of every trial it has seen, keyed by study
    trial number: ``history`` (the study's trials before this run started) and every result of
    this run. Restored trials bring their last report (with the whole curve) through
    ``on_trial_add``, so ``Tuner.restore`` rebuilds what a fresh scheduler has lost.
    """

    def __init__(
        self,
        rule: StopRule,
        history: dict[int, tuple[list[float], int]] | None = None,
        meta: dict[int, tuple[str, bool]] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(rule, StopRule):
            raise ValueError(f"rule must be a StopRule, but got {rule=}.")
        self.rule = rule
        self.curves: dict[int, tuple[list[float], int]] = dict(history or {})
        # trial number -> (plan text, fixed): runs of one plan are one point at a rung, and a
        # baseline or replicate is never stopped (nas.replicates.judge)
        self.meta: dict[int, tuple[str, bool]] = dict(meta or {})
        self.stopped: dict[str, str] = {}  # Ray trial id -> reason

    def on_trial_add(self, tune_controller, trial) -> None:
        self._remember(trial.last_result or {})

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        remembered = self._remember(result)
        if remembered is None or not _judgeable(result):
            return TrialScheduler.CONTINUE
        number, curve, params = remembered
        if (
            len(curve) >= self.rule.max_epochs
        ):  # a trial at its last epoch finishes anyway, as in train()
            return TrialScheduler.CONTINUE
        decision = self.judge(number, curve, params)
        if decision.stop:
            self.stopped[trial.trial_id] = decision.reason
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def judge(self, number: int, curve: list[float], params: int) -> Decision:
        """The shared rule (:func:`nas.replicates.judge`) for trial ``number`` against every
        other curve seen so far."""
        plan, fixed = self.meta.get(number, (f"#{number}", False))
        runs = [
            Run(n, self.meta.get(n, (f"#{n}", False))[0], tuple(c), p)
            for n, (c, p) in self.curves.items()
            if c and p
        ]
        return judge(number, plan, curve, params, fixed, runs, self.rule)

    def stop_reason(self, trial_id: str) -> str | None:
        return self.stopped.get(trial_id)

    def _remember(self, result: dict) -> tuple[int, list[float], int] | None:
        """Keep a result's curve as :func:`nas.replicates.runs_of` keeps a study trial's: up to
        its first non-finite epoch (a diverged trial's earlier epochs count)."""
        if STUDY_TRIAL not in result or not result.get("curve") or not result.get("params"):
            return None
        number, params = int(result[STUDY_TRIAL]), int(result["params"])
        if result.get(PLAN):
            self.meta[number] = (result[PLAN], bool(result.get(FIXED)))
        if prefix := finite_prefix(result["curve"]):
            self.curves[number] = (prefix, params)
        return number, list(result["curve"]), params


def _judgeable(result: dict) -> bool:
    """An epoch report (not a trial's final or skip report) with a curve of finite accuracies."""
    curve = result.get("curve")
    return (
        STUDY_TRIAL in result
        and not result.get("final")
        and bool(curve)
        and all(isinstance(v, (int, float)) for v in curve)
    )


# --- the search: Ray's OptunaSearch on the study's storage -------------------------------------


class StudySearch(OptunaSearch):
    """OptunaSearch on the study's storage that records trials as :mod:`nas.trial` says.

    Every Ray trial is one Optuna trial of the study (``config[STUDY_TRIAL]`` is its number):
    asked with the study's sampler through :func:`define_space`, described (plan, params, ...)
    when asked, given its curve at every result, and told its outcome with user attributes and
    a ``trials/NNNN/trial.json`` at the end. Over-budget and duplicate architectures still take
    a Ray trial (one Ray trial per Optuna trial keeps ``n_trials`` the same on both backends),
    which reports at once without training.
    """

    def __init__(
        self,
        cfg: StudyConfig,
        folder: pathlib.Path,
        storage: optuna.storages.BaseStorage,
        scheduler: EarlyStopScheduler,
        shape: tuple[int, int, int],
        run_name: str,
        existing_trials: int = 0,
        val_size: int | None = None,
    ) -> None:
        super().__init__(
            space=functools.partial(define_space, space=cfg.search_space()),
            metric=list(METRICS_REPORTED),
            mode=list(MODES),
            sampler=make_sampler(cfg, shape, resumed_at=existing_trials),
            study_name=cfg.name,
            storage=storage,
        )
        self._cfg, self._folder, self._scheduler = cfg, str(folder), scheduler
        self._data_shape, self._run_name, self._val_size = tuple(shape), run_name, val_size
        self._attrs: dict[str, dict] = {}
        self._skips: dict[str, tuple[str, str]] = {}

    def suggest(self, trial_id: str) -> dict | str | None:
        if trial_id not in self._ot_trials:
            # one step under the study's lock, as a worker of the Optuna backend takes a slot
            with study_lock(self._ot_study, pathlib.Path(self._folder)):
                requeue_failed_baselines(self._ot_study)  # it takes its failed slot back first
                waiting = queued_count(self._ot_study)
                if slots_left(self._ot_study, self._cfg.n_trials) <= 0 and not waiting:
                    # The study is full (other workers share it, or a restored run had lost a trial):
                    # n_trials bounds the study, whatever number of samples Ray was asked for.
                    return Searcher.FINISHED
                # Created with its owner (this driver) in one write: a driver killed right after
                # asking leaves a trial that fail_stale_trials recognises as its own, not an anonymous one.
                # Queued baselines go first: ask() takes the oldest queued trial, so queue none of ours then.
                if not waiting:
                    owner = {
                        "backend": "ray",
                        "ray_run": self._run_name,
                        "ray_trial": trial_id,
                        "worker": worker_identity(),
                    }
                    self._ot_study.enqueue_trial({}, user_attrs=owner)
                self._ot_trials[trial_id] = self._ot_study.ask()
        try:
            config = super().suggest(trial_id)
        except SpaceExhausted as exc:
            warn_exhausted(self._ot_study, self._cfg, self._ot_trials.pop(trial_id), str(exc))
            return Searcher.FINISHED
        if not isinstance(config, dict):
            return config
        trial = self._ot_trials[trial_id]
        attrs = self._describe(trial, config)
        for key, value in (
            attrs | {"backend": "ray", "ray_run": self._run_name, "ray_trial": trial_id}
        ).items():
            trial.set_user_attr(
                key, value
            )  # again: another process's ask may have taken the queued one
        self._attrs[trial_id] = attrs
        skip = claim(self._context(trial_id, trial))
        if skip is not None:
            self._skips[trial_id] = skip
        return config | {
            STUDY_TRIAL: trial.number,
            PLAN: attrs["plan"],
            SKIP: skip is not None,
            SEED: attrs["seed"],
            FIXED: has_fixed_plan(attrs),
        }

    def _describe(self, trial: optuna.Trial | optuna.trial.FrozenTrial, params: dict) -> dict:
        plan = plan_of(trial.user_attrs, params)
        role = queued_as(trial.user_attrs, self._cfg.seed)
        return trial_attrs(plan, self._data_shape, role, self._val_size)

    def _context(self, trial_id: str, trial: optuna.Trial) -> TrialContext:
        """The trial's context on the driver: the study records it here."""
        ctx = TrialContext(self._cfg, pathlib.Path(self._folder), trial.number, self._data_shape)
        ctx.attrs, ctx.study, ctx.trial = self._attrs[trial_id], self._ot_study, trial
        ctx.extra = {"backend": "ray", "ray_run": self._run_name, "ray_trial": trial_id}
        return ctx

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if (
            not _judgeable(result)
            or trial_id in self._completed_trials
            or (trial := self._trial(trial_id)) is None
        ):
            return
        trial.set_user_attr("curve", list(result["curve"]))
        trial.set_user_attr(
            "worker", worker_identity()
        )  # the driver holds the trial: its heartbeat

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or (trial := self._trial(trial_id)) is None:
            return
        self._completed_trials.add(trial_id)
        if self._ot_study._storage.get_trial(trial._trial_id).state.is_finished():
            log.warning(
                "trial %d was already finished in the study; Ray's repeat is ignored", trial.number
            )
            return
        ctx = self._context(trial_id, trial)
        if trial_id in self._skips:
            finish_skipped(ctx, self._skips[trial_id])
            return
        ended = ended_elsewhere(result, error, self._scheduler.stop_reason(trial_id))
        ctx.started = {k: result[k] for k in START_ATTRS if k in (result or {})}
        if ctx.folder.is_dir():
            shutil.rmtree(ctx.folder / SNAPSHOT, ignore_errors=True)
            settle_files(ctx.folder)  # a pruned trial's worker was ended mid-run
        if ended.result is not None and result.get("resumed_from_epoch"):
            trial.set_user_attr("resumed_from_epoch", result["resumed_from_epoch"])
        finish(ctx, ended)

    # Ray saves the searcher with plain pickle and restores it into the object unpickled from
    # tuner.pkl; the scheduler is that object's link to its scheduler, so it is not saved.
    def save(self, checkpoint_path: str) -> None:
        state = {k: v for k, v in self.__dict__.items() if k != "_scheduler"}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._adopt_running_trials()

    def _adopt_running_trials(self) -> None:
        """After Tuner.restore: keep this run's unfinished trials, fail other ones left RUNNING.

        The dead driver's trials look stale, so they get this driver's identity first. Those of
        this run the saved searcher does not know (Ray's trial list and the searcher are saved
        one after the other) stay RUNNING too: Ray may resume them, and :meth:`_trial` adopts
        them then; :func:`_fail_leftovers` fails the rest when the run ends."""
        storage = self._ot_study._storage
        for trial_id, trial in self._ot_trials.items():
            if (
                trial_id not in self._completed_trials
                and storage.get_trial(trial._trial_id).state.is_finished()
            ):
                self._completed_trials.add(trial_id)  # finished after Ray's last saved state
        for frozen in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.user_attrs.get("ray_run") == self._run_name:
                storage.set_trial_user_attr(frozen._trial_id, "worker", worker_identity())
        from_disk = functools.partial(
            recover, self._ot_study, study_dir=pathlib.Path(self._folder)
        )
        if failed := fail_stale_trials(self._ot_study, recover=from_disk):
            log.warning("trials %s were left running by dead workers; marked failed", failed)

    def _trial(self, trial_id: str) -> optuna.Trial | None:
        """The study trial of Ray trial ``trial_id``: known, or adopted from the storage."""
        if trial_id in self._ot_trials:
            return self._ot_trials[trial_id]
        for frozen in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if (
                frozen.user_attrs.get("ray_trial") == trial_id
                and frozen.user_attrs.get("ray_run") == self._run_name
            ):
                log.info(
                    "Ray trial %s resumed study trial %d, unknown to the saved searcher",
                    trial_id,
                    frozen.number,
                )
                self._ot_trials[trial_id] = optuna.Trial(self._ot_study, frozen._trial_id)
                self._attrs[trial_id] = self._describe(frozen, frozen.params)
                ctx = self._context(trial_id, self._ot_trials[trial_id])
                if (skip := skip_reason(ctx)) is not None:
                    self._skips[trial_id] = skip
                return self._ot_trials[trial_id]
        return None
