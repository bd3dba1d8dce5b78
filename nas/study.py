"""Run a study: create or resume it, then fill its trial slots with one or more local workers.

Re-running the same command resumes: trials left RUNNING by a dead worker are marked failed
and their slots run again; finished and pruned trials count toward ``n_trials`` and are never
re-run. Several workers (``workers=N`` here, or separate processes on other machines sharing a
server storage) pull trials from the same study.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pathlib
import time
import warnings
from dataclasses import replace

import optuna
import torch

from softshare.data import load_dataset

from .baselines import baseline_count, baseline_plans
from .config import STUDY_FILE, StudyConfig, load_study_config, save_study_config
from .objective import data_shape, run_trial
from .sampler import ArchitectureSampler, SpaceExhausted
from .space import BASELINE_ATTR
from .storage import JOURNAL_FILE, fail_stale_trials, open_storage, open_study, state_counts

__all__ = [
    "prepare_study",
    "run_study",
    "run_worker",
    "make_sampler",
    "study_dir",
    "open_existing",
    "slots_left",
]

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 10
REPORT_EVERY_S = 60.0  # refresh the report of a running study at most this often


def study_dir(results_dir: str | os.PathLike, name: str) -> pathlib.Path:
    return pathlib.Path(results_dir) / name


def make_sampler(
    cfg: StudyConfig, shape: tuple[int, ...], worker: int = 0, resumed_at: int = 0
) -> ArchitectureSampler:
    """The study's sampler, seeded so a fresh study is reproducible, wrapped so that it proposes
    only new architectures within the budget (:class:`nas.sampler.ArchitectureSampler`).

    ``shape`` is (classes, input channels, ...) of the data, for parameter counts. Worker k, and a
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
    return ArchitectureSampler(
        inner, cfg.search_space(), tuple(shape[:2]), cfg.max_params, seed=seed
    )


def prepare_study(
    cfg: StudyConfig, folder: pathlib.Path, shape: tuple[int, ...] = (10, 3)
) -> StudyConfig:
    """Create the study folder and storage (with its baselines queued), or check a resumed study
    is the same study. ``shape`` is (classes, input channels, ...) of the data."""
    if not (folder / STUDY_FILE).exists() and (folder / JOURNAL_FILE).exists():
        raise ValueError(
            f"{folder} holds trials ({JOURNAL_FILE}) but no {STUDY_FILE}; restore {STUDY_FILE} "
            f"or choose another study name."
        )
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / STUDY_FILE).exists():
        saved = load_study_config(folder)
        if changed := cfg.identity_differences(saved):
            raise ValueError(
                f"study {cfg.name!r} in {folder} was created with other settings ({', '.join(changed)}); "
                f"re-run with the same flags to resume, or choose another study name."
            )
        cfg = replace(cfg, created=saved.created)
    else:
        versions = {"torch": str(torch.__version__), "optuna": optuna.__version__}
        cfg = replace(cfg, versions=versions)
    save_study_config(cfg, folder)
    study = open_study(cfg.name, open_storage(folder, cfg.storage))
    study.set_user_attr("config", load_study_config(folder).to_dict())
    if (
        cfg.baselines != "none"
        and BASELINES_ATTR not in study.user_attrs
        and not study.get_trials(deepcopy=False)
    ):
        enqueue_baselines(study, cfg, shape)
    return load_study_config(folder)


BASELINES_ATTR = (
    "baselines"  # study attribute: the baseline plans queued when the study was created
)


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


def slots_left(study: optuna.Study, n_trials: int) -> int:
    """Trials still to start. n_trials counts architectures trained (queued baselines included):
    a trial never trained (a duplicate or over the budget, see nas.storage.state_counts) takes no slot."""
    counts = state_counts(study)
    return n_trials - (
        counts["COMPLETE"] + counts["PRUNED"] + counts["RUNNING"] + counts["WAITING"]
    )


def run_worker(
    cfg: StudyConfig, folder: pathlib.Path, worker: int = 0, reporter=None, data=None
) -> None:
    """Pull and run trials until the study has ``n_trials`` finished or running ones, or its space
    has no new architecture left (said in one warning line)."""
    storage = open_storage(folder, cfg.storage)
    data = data if data is not None else load_dataset(cfg.data_config())  # once per worker
    existing = len(open_study(cfg.name, storage).get_trials(deepcopy=False))
    study = open_study(cfg.name, storage, make_sampler(cfg, data_shape(data), worker, existing))
    failures, refreshed = 0, time.monotonic()
    while True:
        fail_stale_trials(study)
        if slots_left(study, cfg.n_trials) <= 0:
            return
        if study.sampler.exhausted(study):
            log.warning(
                "the search space is exhausted: every architecture in it is trained, running or over "
                "the budget; stopping with %d slot(s) left",
                slots_left(study, cfg.n_trials),
            )
            return
        trial = study.ask()
        try:
            status = run_trial(study, trial, cfg, data, folder, reporter)
        except SpaceExhausted as exc:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning("the search space is exhausted (%s); stopping", exc)
            return
        if reporter is not None:
            reporter.trial_end(trial.number, status, study)
        if time.monotonic() - refreshed > REPORT_EVERY_S:
            _refresh_report(folder)
            refreshed = time.monotonic()
        failures = failures + 1 if status == "failed" else 0
        if (
            failures >= MAX_CONSECUTIVE_FAILURES
        ):  # something systematic: stop instead of looping forever
            reason = study.get_trials(deepcopy=False)[trial.number].user_attrs.get("reason", "")
            raise RuntimeError(
                f"{failures} trials in a row failed (last: {reason}); see {folder}/trials/*/error.txt"
            )


def _refresh_report(folder: pathlib.Path) -> None:
    """Keep the report current while the study runs (about a second; nothing to show is fine)."""
    from .report import write_report

    try:
        write_report(folder)
    except ValueError:
        pass
    except OSError as exc:
        log.warning("report not refreshed: %s", exc)


def _worker_main(
    cfg_dict: dict, folder: str, worker: int, threads: int, device: str | None, quiet: bool
) -> None:
    from .progress import StudyReporter  # in the child: fresh imports under spawn

    torch.set_num_threads(threads)
    cfg = StudyConfig.from_dict(cfg_dict)
    if device is not None:
        cfg = replace(cfg, device=device)
    logging.basicConfig(
        level=logging.WARNING, format=f"worker {worker}: %(levelname)s %(message)s"
    )
    run_worker(
        cfg,
        pathlib.Path(folder),
        worker,
        None if quiet else StudyReporter(cfg, prefix=f"w{worker} "),
    )


def _worker_devices(cfg: StudyConfig) -> list[str | None]:
    """One GPU per worker where there are several; else every worker on the configured device."""
    gpus = torch.cuda.device_count() if cfg.device in ("auto", "cuda") else 0
    if gpus > 1:
        return [f"cuda:{i % gpus}" for i in range(cfg.workers)]
    return [None] * cfg.workers


def run_study(cfg: StudyConfig, folder: pathlib.Path, reporter=None) -> optuna.Study:
    """Run the study to ``n_trials`` (resuming if it exists) and return it."""
    data = load_dataset(cfg.data_config())  # missing data fails here, before anything is written
    cfg = prepare_study(cfg, folder, data_shape(data))
    if cfg.workers == 1:
        run_worker(cfg, folder, 0, reporter, data)
    else:
        # Workers share the cores: 2 workers x 2 OpenMP threads on 2 cores thrash (measured
        # 10x slower here), so each gets its share.
        threads = max(1, (os.cpu_count() or 1) // cfg.workers)
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(
                target=_worker_main,
                args=(cfg.to_dict(), str(folder), k, threads, dev, reporter is None),
                daemon=False,
            )
            for k, dev in enumerate(_worker_devices(cfg))
        ]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            raise
        if bad := [p.exitcode for p in procs if p.exitcode]:
            log.warning("%d worker(s) exited with errors %s", len(bad), bad)
    return open_study(cfg.name, open_storage(folder, cfg.storage))


def open_existing(folder: str | os.PathLike) -> tuple[StudyConfig, optuna.Study]:
    """A study already on disk (for report and retrain); one-line errors if it is not one."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no study folder at {folder}")
    cfg = load_study_config(folder)
    storage = open_storage(folder, cfg.storage) if cfg.storage else None
    if storage is None:
        journal = folder / "journal.log"
        if not journal.is_file():
            raise FileNotFoundError(
                f"{folder} has a study.json but no journal.log; it holds no trials."
            )
        storage = open_storage(folder)
    try:
        return cfg, optuna.load_study(study_name=cfg.name, storage=storage)
    except KeyError:
        raise ValueError(f"storage of {folder} holds no study named {cfg.name!r}.") from None
