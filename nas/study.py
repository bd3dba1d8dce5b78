"""The study, whatever backend runs it: its objectives and folder, preparing and opening it,
its sampler, its stopping policy, its slots.

:func:`prepare_study` creates a study (its baselines queued once) or checks a resumed one;
:func:`open_existing` opens one for the report and retrain.

Design: docs/design.md#nasstudy
"""

from __future__ import annotations

import logging
import os
import pathlib
import warnings
from collections import Counter
from dataclasses import replace

import optuna
import torch
from optuna.trial import TrialState

from .baselines import baseline_count, baseline_plans
from .config import StudyConfig, load_study_config, save_study_config
from .early_stop import StopRule
from .replicates import top_up
from .sampler import ArchitectureSampler
from .schema import (
    BASELINE_ATTR,
    BASELINES_ATTR,
    DIRECTIONS,
    JOURNAL_FILE,
    OBJECTIVES,
    STUDY_FILE,
    TAKES_SLOT,
    status_counts,
)
from .space import check_budget
from .storage import open_storage, open_study, study_lock

__all__ = [
    "DIRECTIONS",
    "OBJECTIVES",
    "enqueue_baselines",
    "make_sampler",
    "open_existing",
    "prepare_study",
    "queued_count",
    "slots_left",
    "slots_to_fill",
    "warn_exhausted",
    "stop_rule_for",
    "study_counts",
    "study_dir",
]

log = logging.getLogger(__name__)


def study_dir(results_dir: str | os.PathLike, name: str) -> pathlib.Path:
    """The folder of study ``name`` under ``results_dir``."""
    return pathlib.Path(results_dir) / name


def make_sampler(
    cfg: StudyConfig, shape: tuple[int, ...], worker: int = 0, resumed_at: int = 0
) -> ArchitectureSampler:
    """The study's sampler, seeded so a fresh study is reproducible, wrapped so that it proposes
    only new architectures within the budget (:class:`nas.sampler.ArchitectureSampler`).

    ``shape`` is (classes, input channels, image side) of the data, for parameter counts. Worker k, and a
    run resumed when the study already had ``resumed_at`` trials, get their own seeds: the same
    seed again would make a random sampler re-propose the first run's plans.
    """
    seed = cfg.seed + 1000 * worker + resumed_at
    if cfg.sampler == "nsga2":
        inner = optuna.samplers.NSGAIISampler(seed=seed)
    elif cfg.sampler == "random":
        inner = optuna.samplers.RandomSampler(seed=seed)
    else:
        # multivariate + group: the space is conditional (the cuts decide which bank sizes exist).
        with warnings.catch_warnings():  # multivariate/group are "experimental" but long stable
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            inner = optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, n_startup_trials=5
            )
    return ArchitectureSampler(inner, cfg.search_space(), tuple(shape), cfg.max_params, seed=seed)


def prepare_study(
    cfg: StudyConfig, folder: pathlib.Path, shape: tuple[int, ...] = (10, 3)
) -> StudyConfig:
    """Create the study folder and storage (with its baselines queued), or check a resumed study
    is the same study. ``shape`` is (classes, input channels, ...) of the data."""
    check_budget(cfg.search_space(), cfg.max_params, shape)  # before anything is made
    if not (folder / STUDY_FILE).exists() and (folder / JOURNAL_FILE).exists():
        raise ValueError(
            f"{folder} holds trials ({JOURNAL_FILE}) but no {STUDY_FILE}; restore {STUDY_FILE} "
            f"or choose another study name."
        )
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / STUDY_FILE).exists():
        saved = load_study_config(folder)
        if cfg.identity_differences(saved):
            raise ValueError(
                f"study {cfg.name!r} in {folder} was created with other settings (saved -> now: "
                f"{cfg.difference_text(saved)}); re-run with the same flags to resume, or choose "
                f"another study name."
            )
        cfg = replace(cfg, created=saved.created)
    else:
        versions = {"torch": str(torch.__version__), "optuna": optuna.__version__}
        cfg = replace(cfg, versions=versions)
    cfg = save_study_config(cfg, folder)
    study = open_study(cfg.name, open_storage(folder, cfg.storage))
    study.set_user_attr("config", cfg.stored_dict())  # no password: every reader sees it
    with study_lock(study, folder):  # processes starting together queue them once
        if (
            cfg.baselines != "none"
            and BASELINES_ATTR not in study.user_attrs
            and not study.get_trials(deepcopy=False)
        ):
            enqueue_baselines(study, cfg, shape)
            top_up(study, cfg)  # the baselines' further seeds, right behind them
    return cfg


def enqueue_baselines(study: optuna.Study, cfg: StudyConfig, shape: tuple[int, ...]) -> list[str]:
    """Queue the study's baselines (:func:`nas.baselines.baseline_plans`) once; returns their names.
    They run first, so every later trial is judged against them at the rungs."""
    plans = baseline_plans(
        cfg.search_space(),
        baseline_count(cfg.baselines, cfg.n_trials),
        tuple(shape[:2]),
        cfg.max_params,
    )
    study.set_user_attr(BASELINES_ATTR, [p.name for p in plans])
    for plan in plans:
        study.enqueue_trial(
            {}, user_attrs={BASELINE_ATTR: True, "plan": plan.text, "plan_name": plan.name}
        )
    return [p.name for p in plans]


def study_counts(study: optuna.Study) -> Counter:
    """Trials of ``study`` per status (:func:`nas.schema.status_of`): what the terminal, the
    report and the slot count all say."""
    return status_counts(study.get_trials(deepcopy=False))


def slots_left(study: optuna.Study, n_trials: int) -> int:
    """Trials still to start. n_trials counts architectures trained (queued baselines included):
    a failed trial's slot runs again, and a trial never trained (a duplicate or over the budget)
    takes none."""
    counts = study_counts(study)
    return n_trials - sum(counts[s] for s in TAKES_SLOT)


def slots_to_fill(
    study: optuna.Study, cfg: StudyConfig, folder: pathlib.Path, sampler: ArchitectureSampler
) -> int:
    """The trials to start next (free slots and queued trials), once the replicates are queued
    (:func:`nas.replicates.top_up`); 0 when the study is done: every slot taken, or no new
    architecture left in its space (said in one warning line) and nothing left to confirm."""
    while True:
        with study_lock(study, folder):  # replicates: a baseline's seeds, then the confirmation
            top_up(study, cfg)
        slots, queued = slots_left(study, cfg.n_trials), queued_count(study)
        if slots <= 0 and not queued:
            return 0
        if queued or not sampler.exhausted(study):
            return max(slots, 0) + queued
        with study_lock(study, folder):  # the search can go no further: confirm what it found
            if top_up(study, cfg, search_over=True):
                continue
        warn_exhausted(study, cfg)
        return 0


def warn_exhausted(
    study: optuna.Study,
    cfg: StudyConfig,
    asked: optuna.Trial | None = None,
    why: str = "every architecture in it is trained, running or over the budget",
) -> None:
    """The one line that says the search space is exhausted: the study stops. ``asked``: a trial
    the sampler found no architecture for (:class:`nas.sampler.SpaceExhausted`), failed first."""
    if asked is not None:
        study.tell(asked, state=TrialState.FAIL)
    log.warning(
        "the search space is exhausted: %s; stopping with %d slot(s) left",
        why,
        slots_left(study, cfg.n_trials),
    )


def queued_count(study: optuna.Study) -> int:
    """How many queued trials the study holds (baselines, fixed values a user enqueued): their
    slots are counted already, so they run even when they fill every slot."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def stop_rule_for(cfg: StudyConfig, val_size: int | None) -> StopRule:
    """The study's stopping rule, with the validation set's size for its noise margin."""
    rule = cfg.stop_rule()
    if rule.val_images is not None or val_size is None:
        return rule
    return replace(rule, val_images=val_size)


def open_existing(folder: str | os.PathLike) -> tuple[StudyConfig, optuna.Study]:
    """A study already on disk (for report and retrain); one-line errors if it is not one."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no study folder at {folder}")
    cfg = load_study_config(folder)
    storage = open_storage(folder, cfg.storage) if cfg.storage else None
    if storage is None:
        if not (folder / JOURNAL_FILE).is_file():
            raise FileNotFoundError(
                f"{folder} has a {STUDY_FILE} but no {JOURNAL_FILE}; it holds no trials."
            )
        storage = open_storage(folder)
    try:
        return cfg, optuna.load_study(study_name=cfg.name, storage=storage)
    except KeyError:
        raise ValueError(f"storage of {folder} holds no study named {cfg.name!r}.") from None
