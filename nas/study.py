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

from .config import StudyConfig, load_study_config, save_study_config, STUDY_FILE
from .objective import run_trial
from .storage import JOURNAL_FILE, fail_stale_trials, open_storage, open_study, state_counts

__all__ = ["prepare_study", "run_study", "run_worker", "make_sampler", "study_dir", "open_existing", "slots_left"]

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 10
MAX_CONSECUTIVE_DUPLICATES = 50
REPORT_EVERY_S = 60.0  # refresh the report of a running study at most this often


def study_dir(results_dir: str | os.PathLike, name: str) -> pathlib.Path:
    return pathlib.Path(results_dir) / name


def make_sampler(cfg: StudyConfig, worker: int = 0, resumed_at: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded so a fresh study is reproducible.

    Worker k, and a run resumed when the study already had ``resumed_at`` trials, get their own
    seeds: the same seed again would make a random sampler re-propose the first run's plans.
    """
    seed = cfg.seed + 1000 * worker + resumed_at
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # multivariate + group: the space is conditional (depth decides which stage dims exist).
    with warnings.catch_warnings():  # multivariate/group are "experimental" but long stable
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=5)


def prepare_study(cfg: StudyConfig, folder: pathlib.Path) -> StudyConfig:
    """Create the study folder and storage, or check a resumed study is the same study."""
    if not (folder / STUDY_FILE).exists() and (folder / JOURNAL_FILE).exists():
        raise ValueError(f"{folder} holds trials ({JOURNAL_FILE}) but no {STUDY_FILE}; restore {STUDY_FILE} "
                         f"or choose another study name.")
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / STUDY_FILE).exists():
        saved = load_study_config(folder)
        if changed := cfg.identity_differences(saved):
            raise ValueError(f"study {cfg.name!r} in {folder} was created with other settings ({', '.join(changed)}); "
                             f"re-run with the same flags to resume, or choose another study name.")
        cfg = replace(cfg, created=saved.created)
    else:
        versions = {"torch": str(torch.__version__), "optuna": optuna.__version__}
        cfg = replace(cfg, versions=versions)
    save_study_config(cfg, folder)
    study = open_study(cfg.name, open_storage(folder, cfg.storage))
    study.set_user_attr("config", load_study_config(folder).to_dict())
    return load_study_config(folder)


def slots_left(study: optuna.Study, n_trials: int) -> int:
    """Trials still to start. A duplicate (an architecture already trained) takes no slot: it
    costs nothing, and n_trials means architectures evaluated."""
    counts = state_counts(study)
    return n_trials - (counts["COMPLETE"] + counts["PRUNED"] + counts["RUNNING"] + counts["WAITING"])


def run_worker(cfg: StudyConfig, folder: pathlib.Path, worker: int = 0, reporter=None, data=None) -> None:
    """Pull and run trials until the study has ``n_trials`` finished or running ones."""
    storage = open_storage(folder, cfg.storage)
    existing = len(open_study(cfg.name, storage).get_trials(deepcopy=False))
    study = open_study(cfg.name, storage, make_sampler(cfg, worker, existing))
    data = data if data is not None else load_dataset(cfg.data_config())  # once per worker
    failures, duplicates, refreshed = 0, 0, time.monotonic()
    while True:
        fail_stale_trials(study)
        if slots_left(study, cfg.n_trials) <= 0:
            return
        trial = study.ask()
        status = run_trial(study, trial, cfg, data, folder, reporter)
        if reporter is not None:
            reporter.trial_end(trial.number, status, study)
        if time.monotonic() - refreshed > REPORT_EVERY_S:
            _refresh_report(folder)
            refreshed = time.monotonic()
        failures = failures + 1 if status == "failed" else 0
        duplicates = duplicates + 1 if status == "duplicate" else 0
        if duplicates >= MAX_CONSECUTIVE_DUPLICATES:
            log.warning("the last %d proposals were all architectures already trained: the space looks "
                        "exhausted; stopping with %d slots left", duplicates, slots_left(study, cfg.n_trials))
            return
        if failures >= MAX_CONSECUTIVE_FAILURES:  # something systematic: stop instead of looping forever
            reason = study.get_trials(deepcopy=False)[trial.number].user_attrs.get("reason", "")
            raise RuntimeError(f"{failures} trials in a row failed (last: {reason}); see {folder}/trials/*/error.txt")


def _refresh_report(folder: pathlib.Path) -> None:
    """Keep the report current while the study runs (about a second; nothing to show is fine)."""
    from .report import write_report

    try:
        write_report(folder)
    except ValueError:
        pass
    except OSError as exc:
        log.warning("report not refreshed: %s", exc)


def _worker_main(cfg_dict: dict, folder: str, worker: int, threads: int, device: str | None, quiet: bool) -> None:
    from .progress import StudyReporter  # in the child: fresh imports under spawn

    torch.set_num_threads(threads)
    cfg = StudyConfig.from_dict(cfg_dict)
    if device is not None:
        cfg = replace(cfg, device=device)
    logging.basicConfig(level=logging.WARNING, format=f"worker {worker}: %(levelname)s %(message)s")
    run_worker(cfg, pathlib.Path(folder), worker, None if quiet else StudyReporter(cfg, prefix=f"w{worker} "))


def _worker_devices(cfg: StudyConfig) -> list[str | None]:
    """One GPU per worker where there are several; else every worker on the configured device."""
    gpus = torch.cuda.device_count() if cfg.device in ("auto", "cuda") else 0
    if gpus > 1:
        return [f"cuda:{i % gpus}" for i in range(cfg.workers)]
    return [None] * cfg.workers


def run_study(cfg: StudyConfig, folder: pathlib.Path, reporter=None) -> optuna.Study:
    """Run the study to ``n_trials`` (resuming if it exists) and return it."""
    data = load_dataset(cfg.data_config())  # missing data fails here, before anything is written
    cfg = prepare_study(cfg, folder)
    if cfg.workers == 1:
        run_worker(cfg, folder, 0, reporter, data)
    else:
        # Workers share the cores: 2 workers x 2 OpenMP threads on 2 cores thrash (measured
        # 10x slower here), so each gets its share.
        threads = max(1, (os.cpu_count() or 1) // cfg.workers)
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker_main, args=(cfg.to_dict(), str(folder), k, threads, dev, reporter is None),
                             daemon=False) for k, dev in enumerate(_worker_devices(cfg))]
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
            raise FileNotFoundError(f"{folder} has a study.json but no journal.log; it holds no trials.")
        storage = open_storage(folder)
    try:
        return cfg, optuna.load_study(study_name=cfg.name, storage=storage)
    except KeyError:
        raise ValueError(f"storage of {folder} holds no study named {cfg.name!r}.") from None
