"""Run a study on Ray Tune: the same space, objectives, stopping rule and storage as the Optuna backend.

:func:`run_ray` runs it (``--backend ray``) and :func:`train_trial` trains one trial per Ray
actor, with the searcher and scheduler of :mod:`nas.ray_search`.

Design: docs/design.md#nasray_backend
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import os
import pathlib
import shutil
import threading
from dataclasses import replace

import optuna
import torch
from optuna.trial import TrialState
from ray import tune

from softshare import parse_plan
from softshare.data import Dataset, load_dataset
from softshare.train import CHECKPOINT, METRICS, RunResult

from .baselines import requeue_failed_baselines
from .config import StudyConfig
from .devices import apply_placement, check_ray_device, ray_placement
from .fidelity import ensure_parent, parent_names
from .learned import queue_learned
from .ray_options import RayOptions
from .ray_search import (
    FIXED,
    PLAN,
    SEED,
    SKIP,
    SNAPSHOT,
    STUDY_TRIAL,
    EarlyStopScheduler,
    StudySearch,
)
from .replicates import runs_of
from .schema import INHERIT, RAY_DIR
from .storage import (
    HEARTBEAT_S,
    fail_running_trial,
    fail_stale_trials,
    open_storage,
    open_study,
    worker_identity,
)
from .study import (
    make_sampler,
    prepare_study,
    queued_count,
    slots_left,
    slots_to_fill,
    stop_rule_for,
)
from .trial import TrialContext, data_shape, recover, run_one, val_images

__all__ = ["RayOptions", "RayRunInterrupted", "run_ray", "train_trial"]

log = logging.getLogger(__name__)


class RayRunInterrupted(KeyboardInterrupt):
    """The Ray run stopped before all its trials finished; ``path`` is what ``--resume`` restores."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


# --- one trial, on a Ray worker ----------------------------------------------------------------


def _report(ctx: TrialContext, run: RunResult | None, **extra) -> dict:
    """One report to Ray: the study trial, its objectives and curve (for the scheduler and the
    searcher) and the run so far, a RunResult's fields (:func:`nas.trial.snapshot_of`)."""
    fields = {k: v for k, v in run.to_dict().items() if k != "coefficients"} if run else {}
    history = fields.get("history", [])
    return (
        {
            STUDY_TRIAL: ctx.number,
            "params": ctx.attrs["params"],
            "curve": [row["val_acc"] for row in history],
            "epoch": len(history),
            "best_val_acc": None,
        }
        | fields
        | ctx.started
        | extra
    )


def _link_or_copy(source: pathlib.Path, target: pathlib.Path) -> None:
    try:
        # train() replaces its files atomically, so a link is a stable snapshot
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _restore_from_ray(out: pathlib.Path) -> bool:
    """Put Ray's last checkpoint of this trial (if any) in ``out``; False when it starts fresh."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return False
    with checkpoint.as_directory() as folder:
        for name in (CHECKPOINT, METRICS):
            shutil.copy2(pathlib.Path(folder) / name, out / name)
    return True


class _EpochReporter:
    """The trainable's callback: reports the run after each epoch, as train() hands it over,
    to Ray with a checkpoint of the epoch (what a restarted worker resumes from)."""

    def __init__(self, ctx: TrialContext, extra: dict) -> None:
        self.ctx, self.extra = ctx, extra  # the plan and whether the rule may stop it
        self.resumed_from: int | None = None if ctx.resume else 0

    def __call__(self, run: RunResult) -> None:
        if self.resumed_from is None:  # the epochs before a resume: all but this one
            self.resumed_from = run.epochs_run - 1
        # train() has just written this epoch's checkpoint.pt and metrics.json.
        snapshot = self.ctx.folder / SNAPSHOT
        shutil.rmtree(snapshot, ignore_errors=True)
        snapshot.mkdir()
        for name in (CHECKPOINT, METRICS):
            _link_or_copy(self.ctx.folder / name, snapshot / name)
        tune.report(self.report(run), checkpoint=tune.Checkpoint.from_directory(str(snapshot)))
        return None  # stopping is the scheduler's call: Ray ends this worker

    def report(self, run: RunResult | None, **final) -> dict:
        resumed = {}
        if run is not None:  # none ran since the restore: the run was over already
            before = run.epochs_run if self.resumed_from is None else self.resumed_from
            resumed = {"resumed_from_epoch": before}
        return _report(self.ctx, run, **self.extra, **resumed, **final)


def train_trial(config: dict, data: Dataset, study: dict, folder: str) -> None:
    """Ray Tune function trainable: train the plan of ``config``, reporting every epoch.

    ``data`` arrives from the object store, ``study`` is the StudyConfig as a dict and ``folder``
    the study folder (shared storage on a multi-node cluster).
    """
    cfg = StudyConfig.from_dict(study)
    plan = parse_plan(config[PLAN])
    shape = data_shape(data)
    attrs = {"plan": plan.text, "params": plan.num_parameters(*shape[:2])}
    ctx = TrialContext(cfg, pathlib.Path(folder), int(config[STUDY_TRIAL]), shape, attrs)
    if config.get(SKIP):
        tune.report(_report(ctx, None, final=True, outcome="skipped"))
        return
    resources = tune.get_context().get_trial_resources().required_resources
    torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    # The device Ray gave this trial, not the study's setting: cuda:0 of the cards Ray made
    # visible, or the CPU when it gave none (the trial would otherwise see every card).
    place = ray_placement(cfg.device, _assigned_gpus(), float(resources.get("GPU", 0)))
    ctx.cfg = replace(cfg, device=place.device)
    apply_placement(place)
    ctx.attrs["seed"] = int(config.get(SEED, cfg.seed))  # a replicate's own
    ctx.data = data
    ctx.folder.mkdir(parents=True, exist_ok=True)
    ctx.resume = _restore_from_ray(ctx.folder)
    reporter = _EpochReporter(ctx, {PLAN: plan.text, FIXED: bool(config.get(FIXED))})
    ended = run_one(ctx, reporter)  # a dead worker is retried by Ray instead
    shutil.rmtree(ctx.folder / SNAPSHOT, ignore_errors=True)
    tune.report(
        reporter.report(ended.result, final=True, outcome=ended.status, reason=ended.reason)
    )


def _parent_task(study: dict, folder: str, data: Dataset, name: str) -> None:
    """Ray task: train parent ``name`` of the study in ``folder`` (if it is not yet), where Ray
    placed the task, as a trial is placed (:func:`nas.devices.ray_placement`): cuda:0 of the
    cards Ray made visible (a saved cuda:N names a card the task does not see), capped at its
    fraction of the card, or the CPU when it was given no GPU (Ray no longer hides the cards
    from such a task, which would train on cuda:0 outside Ray's accounting)."""
    resources = _assigned_resources()
    torch.set_num_threads(max(1, int(resources.get("CPU", 1.0))))
    cfg = StudyConfig.from_dict(study)
    place = ray_placement(cfg.device, _assigned_gpus(), float(resources.get("GPU", 0.0)))
    cfg = replace(cfg, device=place.device)
    apply_placement(place)
    ensure_parent(cfg, pathlib.Path(folder), data, name)


def _assigned_resources() -> dict:
    """What Ray gave this task or actor: {"CPU": n, "GPU": share, ...}."""
    import ray

    return dict(ray.get_runtime_context().get_assigned_resources())


def _train_parents(
    cfg: StudyConfig, folder: pathlib.Path, data: Dataset, options: RayOptions
) -> None:
    """inherit: every parent of the space trained before any trial starts, each once, as a Ray
    task with a trial's resources (in parallel where they fit); the trials load them from the
    study folder (shared by every node on a cluster). One already trained costs nothing."""
    import ray

    task = ray.remote(_parent_task).options(
        num_cpus=options.cpus_per_trial,
        num_gpus=options.gpus_per_trial,
        max_retries=options.max_failures,  # a dead worker: the parent resumes at its last epoch
    )
    shared = ray.put(data)
    names = parent_names(cfg.search_space())
    try:
        ray.get([task.remote(cfg.to_dict(), str(folder), shared, name) for name in names])
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None) or exc
        raise RuntimeError(str(cause).strip().splitlines()[-1]) from None


def _assigned_gpus() -> list:
    """The GPU ids Ray assigned this trial's worker (empty when it asked for none)."""
    import ray

    return list(ray.get_gpu_ids())


# --- the run --------------------------------------------------------------------------------------


def _connect(options: RayOptions) -> bool:
    """Start or join Ray unless this process already has; True if this call did."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=options.address,
        include_dashboard=False,
        log_to_driver=options.verbose > 0,
        logging_level=logging.WARNING,
    )
    return True


def _check_resources(options: RayOptions) -> None:
    import ray

    total = ray.cluster_resources()
    for key, flag, need in (
        ("CPU", "cpus", options.cpus_per_trial),
        ("GPU", "gpus", options.gpus_per_trial),
    ):
        if need > total.get(key, 0):
            raise ValueError(
                f"each trial asks for {need:g} {key} (--{flag}-per-trial) but the Ray cluster has "
                f"{total.get(key, 0):g}; lower --{flag}-per-trial or add nodes."
            )


def _new_tuner(
    cfg: StudyConfig,
    folder: pathlib.Path,
    options: RayOptions,
    trainable,
    study: optuna.Study,
    data: Dataset,
    slots: int,
) -> tuple[tune.Tuner, dict]:
    stamp = f"{cfg.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    taken = {
        r["name"] for r in study.user_attrs.get("ray_runs") or []
    }  # two runs started in one second
    name = next(
        n for n in (stamp, *(f"{stamp}-{k}" for k in range(2, len(taken) + 2))) if n not in taken
    )
    storage_path = options.storage_path or str(folder / RAY_DIR)
    runs = runs_of(study.get_trials(deepcopy=False))
    history = {r.number: (list(r.curve), r.params) for r in runs}
    meta = {r.number: (r.plan, r.fixed) for r in runs}
    scheduler = EarlyStopScheduler(stop_rule_for(cfg, val_images(data)), history, meta)
    searcher = StudySearch(
        cfg,
        folder,
        open_storage(folder, cfg.storage),
        scheduler,
        data_shape(data),
        name,
        existing_trials=len(study.get_trials(deepcopy=False)),
        val_size=val_images(data),
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=slots,
            max_concurrent_trials=options.max_concurrent,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            verbose=options.verbose,
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    path = storage_path.rstrip("/") + "/" + name
    return tuner, {
        "name": name,
        "path": path,
        "num_samples": slots,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _trial_name(trial) -> str:
    """Ray's name and folder of a trial: its study trial number (as trials/NNNN) and Ray id."""
    return f"trial_{trial.config[STUDY_TRIAL]:04d}_{trial.trial_id}"


def _last_run(study: optuna.Study, folder: pathlib.Path) -> dict:
    runs = study.user_attrs.get("ray_runs") or []
    if not runs:
        raise ValueError(
            f"study {study.study_name!r} in {folder} has no Ray run to resume; "
            f"start one with --backend ray (without --resume)."
        )
    if not tune.Tuner.can_restore(runs[-1]["path"]):
        raise FileNotFoundError(
            f"the study's last Ray run {runs[-1]['path']} cannot be restored (missing or "
            f"never started); re-run without --resume to start a new one."
        )
    return runs[-1]


def _unfinished(grid, num_samples: int, study: optuna.Study, n_trials: int) -> bool:
    """True if the run was interrupted: a trial of it did not finish, or it stopped asking for
    trials before its number of samples while the study still had free slots."""
    if any(result.error is None and not result.metrics.get("done") for result in grid):
        return True
    return len(grid) < num_samples and slots_left(study, n_trials) > 0


def _fail_leftovers(study: optuna.Study, run_name: str) -> None:
    """Fail this run's trials still RUNNING after Ray finished every trial it knows of.

    Only a driver killed between saving Ray's trial list and the searcher's state leaves such a
    trial (the searcher knows it, Ray does not); it would otherwise hold a slot forever."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("ray_run") == run_name and fail_running_trial(
            study, trial, "lost by an interrupted Ray run"
        ):
            log.warning(
                "trial %d was lost by the interrupted Ray run; marked failed", trial.number
            )


def refresh_heartbeats(study: optuna.Study, run_name: str) -> int:
    """The driver's heartbeat on every RUNNING trial of its run; returns how many it refreshed.

    The driver holds the run's trials: a pending trial (waiting for resources) or one inside a
    long epoch reports nothing, and without this another process sharing the storage would take
    its worker for dead after STALE_AFTER_S."""
    me, refreshed = worker_identity(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("ray_run") == run_name:
            try:
                study._storage.set_trial_user_attr(trial._trial_id, "worker", me)
                refreshed += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # finished between the read and the write
    return refreshed


@contextlib.contextmanager
def _driver_heartbeat(study: optuna.Study, run_name: str):
    """Refresh the run's heartbeats every HEARTBEAT_S seconds while Ray runs it."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                refresh_heartbeats(study, run_name)
            except Exception:  # a storage hiccup must not end the run
                log.debug("driver heartbeat failed", exc_info=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def _fit(tuner: tune.Tuner, run: dict, study: optuna.Study, cfg: StudyConfig) -> None:
    """Run ``tuner`` to its end; raises :class:`RayRunInterrupted` if it stopped first (Ctrl+C)."""
    with _driver_heartbeat(study, run["name"]):
        grid = tuner.fit()
    if _unfinished(grid, run["num_samples"], study, cfg.n_trials):
        raise RayRunInterrupted(run["path"])
    _fail_leftovers(study, run["name"])


def _check_not_all_failed(study: optuna.Study, run_name: str, folder: pathlib.Path) -> None:
    """Raise if every trial of a Ray run failed (something systematic, as a worker of the Optuna
    backend concludes after a run of failures)."""
    trials = [
        t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("ray_run") == run_name
    ]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if failed and len(failed) == len(trials):
        raise RuntimeError(
            f"every trial of Ray run {run_name} failed (last: {failed[-1].user_attrs.get('reason', '')}); "
            f"see {folder}/trials/*/error.txt"
        )


def run_ray(
    cfg: StudyConfig,
    folder: str | os.PathLike,
    options: RayOptions | None = None,
    *,
    trainable=None,
) -> optuna.Study:
    """Run the study to ``n_trials`` on Ray Tune (resuming its last run if ``options.resume``).

    ``trainable`` replaces :func:`train_trial` (same signature; tests inject faults with it).
    Raises :class:`RayRunInterrupted` when Ray stopped before every trial finished (Ctrl+C), and
    RuntimeError when every trial of a run failed (as a worker of the Optuna backend does).
    ``options``: default ``RayOptions()`` (a local runtime, one CPU per trial).
    """
    options = RayOptions() if options is None else options
    folder = pathlib.Path(folder).resolve()
    check_ray_device(cfg.device, options.gpus_per_trial)  # before anything is loaded or started
    data = load_dataset(cfg.data_config())  # missing data fails here, before anything is written
    cfg = prepare_study(cfg, folder, data_shape(data))
    # CheckpointConfig(num_to_keep=1) snapshots the run state at every trial checkpoint (so a restore
    # sees every finished epoch); Ray warns about that each time unless told not to.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    started = _connect(options)
    try:
        _check_resources(options)
        if cfg.fidelity == INHERIT or cfg.learned_plans:
            _train_parents(cfg, folder, data, options)
        study = open_study(cfg.name, open_storage(folder, cfg.storage))
        queue_learned(study, cfg, folder, data)  # parents trained just above
        fn = tune.with_resources(
            tune.with_parameters(
                trainable or train_trial, data=data, study=cfg.to_dict(), folder=str(folder)
            ),
            {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
        )
        if options.resume:
            run = _last_run(study, folder)
            _fit(
                tune.Tuner.restore(
                    run["path"], trainable=fn, resume_unfinished=True, resume_errored=True
                ),
                run,
                study,
                cfg,
            )
        # Fill the slots that failed trials left, as a worker of the Optuna backend does, and stop as
        # it does: when every trial of a run failed (RuntimeError), or when the space is exhausted.
        recover_from_disk = functools.partial(recover, study, study_dir=folder)
        fail_stale_trials(study, recover=recover_from_disk)
        # Queued trials (baselines, a user's fixed values) hold slots already counted, so they run
        # even when they fill every slot.
        sampler = make_sampler(cfg, data_shape(data))
        while True:
            requeue_failed_baselines(study)  # a baseline failed in the last run runs again
            if not slots_to_fill(study, cfg, folder, sampler):
                break
            slots, queued = slots_left(study, cfg.n_trials), queued_count(study)
            tuner, run = _new_tuner(cfg, folder, options, fn, study, data, max(slots, 0) + queued)
            study.set_user_attr("ray_runs", (study.user_attrs.get("ray_runs") or []) + [run])
            _fit(tuner, run, study, cfg)
            fail_stale_trials(study, recover=recover_from_disk)
            # Progress: more trials hold a slot without waiting (trained or training) than before.
            if slots_left(study, cfg.n_trials) + queued_count(study) >= slots + queued:
                _check_not_all_failed(study, run["name"], folder)
                log.warning(
                    "Ray run %s trained nothing new; stopping with %d slot(s) left",
                    run["name"],
                    slots,
                )
                break
        return open_study(cfg.name, open_storage(folder, cfg.storage))
    finally:
        if started:
            import ray

            ray.shutdown()
