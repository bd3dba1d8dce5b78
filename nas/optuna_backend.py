"""The Optuna backend (``--backend optuna``, the default): one or more local worker processes
pull trials from the study's storage and train them here.

:func:`run_study` runs a study; re-running the same command resumes it.

Design: docs/design.md#nasoptuna_backend
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import pathlib
import threading
import time
from dataclasses import replace

import optuna
import torch

from softshare.data import load_dataset
from softshare.runtime import resolve_device
from softshare.train import EpochMetrics, RunResult

from .baselines import requeue_failed_baselines
from .config import StudyConfig
from .devices import Placement, apply_placement, visible_gpus, worker_placements
from .learned import queue_learned
from .replicates import judge, record_noise, runs_of
from .sampler import SpaceExhausted
from .schema import FAILED, has_fixed_plan
from .storage import (
    HEARTBEAT_S,
    fail_stale_trials,
    open_storage,
    open_study,
    study_lock,
    worker_identity,
)
from .study import (
    make_sampler,
    prepare_study,
    queued_count,
    slots_left,
    slots_to_fill,
    stop_rule_for,
    warn_exhausted,
)
from .trial import (
    TrialContext,
    claim,
    data_shape,
    describe,
    failure_reason,
    finish,
    finish_skipped,
    recover,
    run_one,
    val_images,
)

__all__ = ["run_study", "run_trial", "run_worker"]

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 10
REPORT_EVERY_S = 60.0  # refresh the report of a running study at most this often


class _Heartbeat:
    """Refreshes the trial's worker record every HEARTBEAT_S seconds while it trains."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial, self.stop = trial, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                self.trial.set_user_attr("worker", worker_identity())
            except Exception:  # a storage hiccup must not kill training
                log.debug("heartbeat write failed", exc_info=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()


def _callback(ctx: TrialContext, reporter):
    """Each epoch: record the curve and heartbeat, then ask the stopping rule."""
    study, trial, attrs = ctx.study, ctx.trial, ctx.attrs
    rule = stop_rule_for(ctx.cfg, attrs["val_images"])
    fixed = has_fixed_plan(attrs)  # a baseline or a replicate trains its full budget

    def on_epoch(run: RunResult):
        curve = [row["val_acc"] for row in run.history]
        try:
            trial.set_user_attr("curve", curve)
            trial.set_user_attr("worker", worker_identity())
        except optuna.exceptions.UpdateFinishedTrialError:  # another process failed it for dead
            return "finished by another process meanwhile"
        runs = [] if fixed else runs_of(study.get_trials(deepcopy=False))
        decision = judge(trial.number, attrs["plan"], curve, attrs["params"], fixed, runs, rule)
        if reporter is not None:
            reporter.epoch(trial.number, EpochMetrics(**run.history[-1]))
        return decision.reason if decision.stop else None

    return on_epoch


def run_trial(ctx: TrialContext, reporter=None) -> str:
    """Run the trial of ``ctx`` (its study, live trial and data) to its end and tell the study;
    returns the status recorded."""
    attrs = describe(ctx)
    if reporter is not None:
        reporter.trial_start(ctx.number, attrs)
    if (skip := claim(ctx)) is not None:
        return finish_skipped(ctx, skip)
    ctx.folder.mkdir(parents=True, exist_ok=True)
    with _Heartbeat(ctx.trial):
        ended = run_one(ctx, _callback(ctx, reporter))
    return finish(ctx, ended)


def run_worker(
    cfg: StudyConfig, folder: pathlib.Path, worker: int = 0, reporter=None, data=None
) -> None:
    """Pull and run trials until the study has ``n_trials`` finished or running ones, or its space
    has no new architecture left (said in one warning line)."""
    storage = open_storage(folder, cfg.storage)
    data = data if data is not None else load_dataset(cfg.data_config())  # once per worker
    existing = len(open_study(cfg.name, storage).get_trials(deepcopy=False))
    study = open_study(cfg.name, storage, make_sampler(cfg, data_shape(data), worker, existing))
    queue_learned(study, cfg, folder, data)  # once per study, parents first
    failures, refreshed = 0, time.monotonic()
    while True:
        fail_stale_trials(study, recover=functools.partial(recover, study, study_dir=folder))
        if not slots_to_fill(study, cfg, folder, study.sampler):
            return
        if (trial := _take_slot(study, cfg.n_trials, folder)) is None:
            return
        ctx = TrialContext(cfg, folder, trial.number, data_shape(data), study=study, trial=trial)
        ctx.data, ctx.val_size = data, val_images(data)
        try:
            status = run_trial(ctx, reporter)
        except SpaceExhausted as exc:
            warn_exhausted(study, cfg, trial, str(exc))
            return
        record_noise(study)
        if reporter is not None:
            reporter.trial_end(trial.number, status, study)
        if time.monotonic() - refreshed > REPORT_EVERY_S:
            _refresh_report(folder)
            refreshed = time.monotonic()
        failures = failures + 1 if status == FAILED else 0
        if (
            failures >= MAX_CONSECUTIVE_FAILURES
        ):  # something systematic: stop instead of looping forever
            reason = study.get_trials(deepcopy=False)[trial.number].user_attrs.get("reason", "")
            raise RuntimeError(
                f"{failures} trials in a row failed (last: {reason}); see {folder}/trials/*/error.txt"
            )


def _take_slot(study: optuna.Study, n_trials: int, folder: pathlib.Path) -> optuna.Trial | None:
    """A new trial of the study with this worker's identity recorded as it is created, or None
    when the study has no free slot. A worker killed right after taking it leaves a trial that
    :func:`nas.storage.fail_stale_trials` recognises as a dead worker's at once (not after
    STALE_AFTER_S), so a resumed study gets its slot back. Queued baselines go first: ask() takes
    the oldest queued trial, so none of ours is queued while one waits; a failed baseline is
    queued again first, so its slot is not filled with a searched plan."""
    with study_lock(study, folder):  # across machines on a PostgreSQL storage
        requeue_failed_baselines(study)
        if queued_count(
            study
        ):  # its slot is counted already: it runs even when the queue fills them all
            return study.ask()
        if slots_left(study, n_trials) <= 0:
            return None
        study.enqueue_trial({}, user_attrs={"worker": worker_identity()})
        return study.ask()


def _refresh_report(folder: pathlib.Path) -> None:
    """Keep the report current while the study runs (about a second; nothing to show is fine)."""
    try:
        # Here, not at the top: the report needs plotly, which a GPU box running only studies
        # may lack (bench/gpu_check.py); such a study runs without the live report.
        from .report import write_report

        write_report(folder)
    except ImportError as exc:
        log.warning("report not refreshed: %s", exc)
    except ValueError:
        pass
    except OSError as exc:
        log.warning("report not refreshed: %s", exc)


def _worker_main(
    cfg_dict: dict,
    folder: str,
    worker: int,
    threads: int,
    place: Placement,
    quiet: bool,
    errors=None,
) -> None:
    """One spawned worker: its placement, then :func:`run_worker`. What it dies of goes to
    ``errors`` (a queue the parent reads) as (worker, one line), then propagates."""
    try:
        _placed_worker(cfg_dict, folder, worker, threads, place, quiet)
    except BaseException as exc:
        if errors is not None:
            errors.put((worker, failure_reason(exc)))
        raise


def _placed_worker(
    cfg_dict: dict, folder: str, worker: int, threads: int, place: Placement, quiet: bool
) -> None:
    from .report.progress import StudyReporter  # in the child: fresh imports under spawn

    if place.visible is not None:  # the parent set it for this child; CUDA has not started yet
        os.environ["CUDA_VISIBLE_DEVICES"] = place.visible
    torch.set_num_threads(threads)
    cfg = StudyConfig.from_dict(cfg_dict)
    if place.device is not None:
        cfg = replace(cfg, device=place.device)
    logging.basicConfig(
        level=logging.WARNING, format=f"worker {worker}: %(levelname)s %(message)s"
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as search.py sets it in the parent
    apply_placement(place)
    run_worker(
        cfg,
        pathlib.Path(folder),
        worker,
        None if quiet else StudyReporter(cfg, prefix=f"w{worker} "),
    )


def _worker_placements(cfg: StudyConfig) -> list[Placement]:
    """Each local worker's card (round-robin over the visible GPUs) and memory share."""
    gpus = visible_gpus() if cfg.device != "cpu" else []
    return worker_placements(cfg.workers, cfg.device, gpus)


@contextlib.contextmanager
def _child_environment(place: Placement):
    """``CUDA_VISIBLE_DEVICES`` of one spawned worker, set in this process while it starts (a
    spawned child copies the environment), so it holds before the child's CUDA starts."""
    if place.visible is None:
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = place.visible
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def run_study(cfg: StudyConfig, folder: pathlib.Path, reporter=None) -> optuna.Study:
    """Run the study to ``n_trials`` (resuming if it exists) and return it."""
    # A device this machine lacks is refused before anything is loaded, written or trained
    # (the trials run here; on Ray the driver may lack the workers' GPUs, so it is not checked).
    resolve_device(cfg.device)
    data = load_dataset(cfg.data_config())  # missing data fails here, before anything is written
    cfg = prepare_study(cfg, folder, data_shape(data))
    if cfg.workers == 1:
        run_worker(cfg, folder, 0, reporter, data)
    else:
        # Workers share the cores: 2 workers x 2 OpenMP threads on 2 cores thrash (measured
        # 10x slower here), so each gets its share.
        threads = max(1, (os.cpu_count() or 1) // cfg.workers)
        ctx = multiprocessing.get_context("spawn")
        placements = _worker_placements(cfg)
        errors = ctx.SimpleQueue()  # (worker, one line) of each worker that raised
        procs = [
            ctx.Process(
                target=_worker_main,
                args=(cfg.to_dict(), str(folder), k, threads, place, reporter is None, errors),
                daemon=False,
            )
            for k, place in enumerate(placements)
        ]
        for p, place in zip(procs, placements):
            with _child_environment(place):
                p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            raise
        _check_exits(procs, errors)
    return open_study(cfg.name, open_storage(folder, cfg.storage))


def _check_exits(procs: list, errors) -> None:
    """Workers that failed: RuntimeError naming the first error in one line when every worker
    failed (the study cannot have gone on), one warning line when some did (the others
    finished the study)."""
    bad = [k for k, p in enumerate(procs) if p.exitcode]
    if not bad:
        return
    said = {}
    while not errors.empty():
        worker, line = errors.get()
        said.setdefault(worker, line)
    first = next(iter(said), bad[0])
    why = said.get(first) or _exit_text(procs[first].exitcode)
    text = f"{len(bad)} of {len(procs)} workers failed; the first, worker {first}: {why}"
    if len(bad) == len(procs):
        raise RuntimeError(text)
    log.warning("%s", text)


def _exit_text(code: int) -> str:
    """What a worker's exit code says when it reported no error (killed by a signal)."""
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with status {code}"
