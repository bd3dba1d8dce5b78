"""One trial's record, the same on every backend: describe it, skip it, judge its outcome,
finish it, name its failure, keep its coefficients.

:func:`run_one` trains a trial in its :class:`TrialContext` and :func:`finish` records what it
came to; the backends only decide when each step runs, and where.

Design: docs/design.md#nastrial
"""

from __future__ import annotations

import errno
import json
import logging
import math
import pathlib
import traceback
from dataclasses import dataclass, field, fields

import optuna
import torch
from optuna.trial import TrialState

from softshare import ModelConfig, SharingPlan, parse_plan
from softshare.analysis import coefficient_matrices
from softshare.checkpoint import atomic_write_text, dumps
from softshare.data import Dataset
from softshare.evaluate import load
from softshare.train import BEST, CHECKPOINT, METRICS, ResultCallback, RunResult, train

from .config import StudyConfig
from .devices import oom_reason, release_memory
from .fidelity import ParentDiverged, TrialStart, trial_recipe, trial_start
from .schema import (
    BASELINE_ATTR,
    COEFFICIENTS_FILE,
    COMPLETE,
    DUPLICATE,
    ERROR_FILE,
    FAILED,
    OVER_BUDGET,
    PRUNED,
    REPLICATE_ATTR,
    RESULT_ATTRS,
    START_ATTRS,
    TRAINED,
    TRIAL_FILE,
    has_fixed_plan,
    plan_failure,
    trial_dir,
)
from .space import define_space, plan_from_params
from .storage import study_lock, worker_identity

log = logging.getLogger(__name__)
CLAIMED_ATTR = "claimed"  # user attribute: True once the trial holds its architecture (claim)
HELD = "running or queued"  # why a plan is taken: a trial trains it, or is queued to

__all__ = [
    "Ended",
    "TrialContext",
    "begin_training",
    "claim",
    "coefficients_from_checkpoint",
    "data_shape",
    "describe",
    "drop_weights",
    "ended_elsewhere",
    "failure_reason",
    "finish",
    "finish_skipped",
    "finish_trial",
    "finite_prefix",
    "outcome",
    "plan_of",
    "record_result",
    "recover",
    "queued_as",
    "run_one",
    "run_seed",
    "settle_files",
    "skip_reason",
    "snapshot_of",
    "taken",
    "trial_attrs",
    "trial_plan",
    "trial_record",
    "val_images",
    "write_coefficients",
]


@dataclass
class TrialContext:
    """What one trial's steps share, wherever they run: a local worker holds the study and
    the live trial; a Ray worker only the config, the data and the folder (its driver records)."""

    cfg: StudyConfig
    study_dir: pathlib.Path
    number: int
    shape: tuple[int, int, int]  # data_shape
    attrs: dict = field(default_factory=dict)  # trial_attrs, once described
    study: optuna.Study | None = None
    trial: optuna.Trial | None = None
    data: Dataset | None = None
    val_size: int | None = None
    extra: dict = field(default_factory=dict)  # more of trial.json (a Ray run and trial)
    resume: bool = False  # a Ray trial restored from its last checkpoint
    keep_checkpoints: bool = False
    started: dict = field(default_factory=dict)  # how it started (nas.fidelity), once known

    @property
    def folder(self) -> pathlib.Path:
        return trial_dir(self.study_dir, self.number)

    @property
    def seed(self) -> int:
        """The training seed: a replicate's own, else the study's (``attrs["seed"]`` says)."""
        seed = self.attrs.get("seed")
        return self.cfg.seed if seed is None else int(seed)

    @property
    def model_config(self) -> ModelConfig:
        classes, channels, _ = self.shape
        return ModelConfig(self.attrs["plan"], num_classes=classes, in_channels=channels)


@dataclass
class Ended:
    """What a trial came to: its state, status and reason, the run's result when it trained,
    and an error the study cannot go on after (re-raised once the trial is recorded)."""

    state: TrialState
    status: str
    reason: str = ""
    result: RunResult | None = None
    error: BaseException | None = None


# --- describe ---------------------------------------------------------------------------------


def data_shape(data: Dataset) -> tuple[int, int, int]:
    """(classes, channels, image side) of ``data``: what a plan's size and cost depend on."""
    return data.num_classes, data.train.images.shape[1], data.train.images.shape[-1]


def val_images(data: Dataset) -> int | None:
    """Size of the validation split (what an accuracy's standard error depends on), or None."""
    return len(data.val.labels) if data.val is not None else None


def trial_attrs(
    plan: SharingPlan,
    shape: tuple[int, int, int],
    role: dict | None = None,
    val_size: int | None = None,
) -> dict:
    """What a trial records about its architecture before training; ``shape`` as :func:`data_shape`;
    ``role`` as :func:`queued_as` (its seed, whether a baseline, the trial a replicate repeats)."""
    classes, channels, size = shape
    role = role or {}
    return {
        "plan": plan.text,
        "plan_name": plan.name,
        "shared": plan.is_shared,
        "depth": plan.depth,
        "width": plan.width,
        "templates": plan.templates_per_group(),
        "params": plan.num_parameters(classes, channels),
        "macs": plan.multiply_adds(size, classes, channels),
        "seed": role.get("seed"),
        "val_images": val_size,
        BASELINE_ATTR: bool(role.get(BASELINE_ATTR)),
        REPLICATE_ATTR: role.get(REPLICATE_ATTR),
        "worker": worker_identity(),
    }


def run_seed(user_attrs: dict, study_seed: int) -> int:
    """The training seed of a trial: a replicate's own, else the study's."""
    if user_attrs.get(REPLICATE_ATTR) is not None and user_attrs.get("seed") is not None:
        return int(user_attrs["seed"])
    return study_seed


def queued_as(user_attrs: dict, study_seed: int) -> dict:
    """A live trial's role as it was queued (``user_attrs``): its seed, whether a baseline,
    the trial a replicate repeats; the same on every backend."""
    return {
        "seed": run_seed(user_attrs, study_seed),
        BASELINE_ATTR: bool(user_attrs.get(BASELINE_ATTR)),
        REPLICATE_ATTR: user_attrs.get(REPLICATE_ATTR),
    }


def plan_of(user_attrs: dict, params: dict) -> SharingPlan:
    """A trial's plan: a baseline's fixed plan (in its user attributes), else its sampled params."""
    if has_fixed_plan(user_attrs):
        return parse_plan(user_attrs["plan"])
    return plan_from_params(params)


def trial_plan(trial: optuna.Trial, space) -> SharingPlan:
    """The plan of a live ``trial``: it asks ``space`` (a baseline asks nothing), then :func:`plan_of`."""
    define_space(trial, space)
    return plan_of(trial.user_attrs, trial.params)


def describe(ctx: TrialContext) -> dict:
    """Ask ``ctx.trial`` its plan and write its description (:func:`trial_attrs`) as user
    attributes, kept in ``ctx.attrs``; returns them."""
    plan = trial_plan(ctx.trial, ctx.cfg.search_space())
    ctx.attrs = trial_attrs(
        plan, ctx.shape, queued_as(ctx.trial.user_attrs, ctx.cfg.seed), ctx.val_size
    )
    for key, value in ctx.attrs.items():
        ctx.trial.set_user_attr(key, value)
    return ctx.attrs


def trial_record(ctx: TrialContext) -> dict:
    """The body of ``trial.json``: what the trial is and how it was trained (``ctx.extra`` added;
    without a config, a recovered trial's, only what it is)."""
    cfg = ctx.cfg
    if cfg is None:
        return {"attrs": ctx.attrs} | ctx.extra
    return {
        "attrs": ctx.attrs,
        "model_config": ctx.model_config.to_dict(),
        "train_config": trial_recipe(cfg, cfg.train_config(seed=ctx.seed)).to_dict(),
        "data_config": cfg.data_config().to_dict(),
        "fidelity": {k: getattr(cfg, k) for k in ("fidelity", "inherit_epochs", "inherit_lr")},
    } | ctx.extra


def begin_training(ctx: TrialContext) -> TrialStart:
    """How the trial starts (:func:`nas.fidelity.trial_start`: from scratch, or from its
    parent, trained first if no trial needed it before), kept in ``ctx.started`` and written as
    the live trial's user attributes."""
    recipe = ctx.cfg.train_config(seed=ctx.seed)
    start = trial_start(ctx.cfg, ctx.study_dir, ctx.data, ctx.model_config, recipe)
    ctx.started = dict(start.attrs)
    if ctx.trial is not None:
        for key, value in start.attrs.items():
            ctx.trial.set_user_attr(key, value)
    return start


# --- skip ---------------------------------------------------------------------------------------


def taken(
    study: optuna.Study, seed: int | None = None, number: int | None = None
) -> dict[str, tuple[str, int]]:
    """Plan text -> (why, trial) for every architecture a trial of ``study`` keeps from another
    run of it: the one rule, which the sampler (nothing taken is proposed) and
    :func:`skip_reason` (a trial of a taken plan is not trained) both apply.

    ``number``: the asking trial (None: one not made yet), never its own twin; ``seed``: a
    replicate's, whose twins are runs with that seed (a replicate queued twice); without it,
    replicates are left out (their architecture's own trial counts)."""
    held: dict[str, tuple[str, int]] = {}
    for t in study.get_trials(deepcopy=False):
        plan = t.user_attrs.get("plan")
        if plan is None or plan in held or t.number == number:
            continue
        if (why := _holds(t, seed, number)) is not None:
            held[plan] = (why, t.number)
    return held


def _holds(t: optuna.trial.FrozenTrial, seed: int | None, number: int | None) -> str | None:
    """Why trial ``t`` keeps its plan from the asker (see :func:`taken`), or None."""
    if seed is None and t.user_attrs.get(REPLICATE_ATTR) is not None:
        return None
    if seed is not None and t.user_attrs.get("seed") != seed:
        return None
    if t.state == TrialState.RUNNING:
        # Only with its claim: two trials that have both written the plan must not each
        # see the other and both skip (claim decides under the lock).
        return HELD if t.user_attrs.get(CLAIMED_ATTR) else None
    if t.state == TrialState.WAITING:
        # queued before the asker: it runs first (a younger one is skipped when it runs)
        return HELD if number is None or t.number < number else None
    status = t.user_attrs.get("status")
    if status in TRAINED:
        return "trained"
    if status == OVER_BUDGET:
        return OVER_BUDGET
    return plan_failure(t.user_attrs.get("reason")) if t.state == TrialState.FAIL else None


def claim(ctx: TrialContext) -> tuple[str, str] | None:
    """:func:`skip_reason` for a trial about to train, and, when it may, its architecture
    claimed for it: the check and the claim are one step under the study's lock
    (:func:`nas.storage.study_lock`, across machines on PostgreSQL), so of two workers with the
    same plan exactly one trains, whichever order they wrote and looked in (writing the plan
    first and judging twins by age let both train)."""
    with study_lock(ctx.study, ctx.study_dir, "claims"):
        if (skip := skip_reason(ctx)) is not None:
            return skip
        ctx.trial.set_user_attr(CLAIMED_ATTR, True)
    return None


def skip_reason(ctx: TrialContext) -> tuple[str, str] | None:
    """(status, reason) when the trial must not train: over ``max_params``, or an architecture
    :func:`taken` (another trial trains or trained it: on the same data with the same seed it
    would learn the same curve; or it failed in a way it would again); ``None`` when it trains.
    The sampler already proposes only plans not taken and within the budget: this catches what
    slips past it (two workers proposing one plan at the same moment, a baseline queued twice)."""
    attrs, max_params = ctx.attrs, ctx.cfg.max_params
    if max_params is not None and attrs["params"] > max_params:
        reason = f"{attrs['params']:,} parameters > max_params {max_params:,}; not trained"
        return OVER_BUDGET, reason
    seed = attrs["seed"] if attrs.get(REPLICATE_ATTR) is not None else None
    held = taken(ctx.study, seed, ctx.number).get(attrs["plan"])
    if held is None:
        return None
    why, twin = held
    said = "" if why in (HELD, "trained") else f" ({why})"
    return DUPLICATE, f"same architecture as trial {twin}{said}; not trained"


def finish_skipped(ctx: TrialContext, skip: tuple[str, str]) -> str:
    """End a trial that :func:`skip_reason` said not to train; it takes no slot. Over the budget:
    PRUNED with a violated constraint (the sampler learns the budget). A duplicate: FAIL, so the
    storage never holds a COMPLETE copy of another trial's result (one would pull TPE back to
    the same spot)."""
    status, reason = skip
    if status == OVER_BUDGET:
        over = float(ctx.attrs["params"] - ctx.cfg.max_params)
        ctx.trial.set_constraint("max_params", over)
        return finish_trial(ctx, Ended(TrialState.PRUNED, status, reason))
    return finish_trial(ctx, Ended(TrialState.FAIL, status, reason))


# --- run ----------------------------------------------------------------------------------------


def run_one(ctx: TrialContext, callback: ResultCallback | None = None) -> Ended:
    """Train the trial of ``ctx`` in this process (as Optuna's ``_run_trial`` runs one): how it
    starts, :func:`softshare.train.train` with ``callback`` handed the run after each epoch (a
    str back stops it, the reason), and what it came to. A failure is the trial's (the study goes
    on): its traceback goes to ``error.txt``. The machine's or the parent's (disk full, a parent
    that diverged) and an interrupt end the study: :attr:`Ended.error`, which :func:`finish`
    re-raises. The card is given back whatever happened; a trained trial keeps its coefficients
    and drops its weights."""
    try:
        start = begin_training(ctx)  # scratch | parent
        result = train(
            ctx.model_config,
            start.recipe,
            ctx.data,
            data_config=ctx.cfg.data_config(),
            out_dir=ctx.folder,
            resume=ctx.resume,
            initial=start.model,
            result_callback=callback,
        )
    except KeyboardInterrupt as exc:
        return Ended(TrialState.FAIL, FAILED, "interrupted", error=exc)
    except Exception as exc:
        reason = oom_reason(exc) or failure_reason(exc)
        if _ends_study(exc):
            return Ended(TrialState.FAIL, FAILED, reason, error=exc)
        atomic_write_text(ctx.folder / ERROR_FILE, traceback.format_exc())
        return Ended(TrialState.FAIL, FAILED, reason)
    finally:  # the next trial gets the card back (the exception's frames are gone by now)
        release_memory()
    write_coefficients(ctx.folder, result.coefficients)
    drop_weights(ctx.folder, ctx.keep_checkpoints)
    return Ended(*outcome(result.status, result.stop_reason), result=result)


# OSErrors that say the machine cannot go on (disk full, quota, read-only file system).
_MACHINE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _ends_study(exc: BaseException) -> bool:
    """The machine's or the parent's error, not the trial's: every later trial would fail the
    same way (search.py: exit 74 for the machine's); the slot runs again on resume."""
    return isinstance(exc, ParentDiverged) or (
        isinstance(exc, OSError) and exc.errno in _MACHINE_ERRORS
    )


def snapshot_of(report: dict) -> RunResult | None:
    """The RunResult a report carries (its fields at the top level), or None without one."""
    if "history" not in report:
        return None
    return RunResult(**{f.name: report[f.name] for f in fields(RunResult) if f.name in report})


_STATES = {COMPLETE: TrialState.COMPLETE, PRUNED: TrialState.PRUNED, FAILED: TrialState.FAIL}


def ended_elsewhere(report: dict | None, error: bool, stopped: str | None) -> Ended:
    """What a trial that ran in another process (a Ray worker) came to, from what it handed
    back: its last ``report`` (a final one carries :func:`run_one`'s status and reason), whether
    the process errored, why the stopping rule ended it (the scheduler's reason)."""
    run = snapshot_of(report or {})
    if error:
        reason = (
            "the Ray trial errored (its worker died more often than max_failures "
            "allows, or Ray could not start it); see error.txt in its Ray trial folder"
        )
        return Ended(TrialState.FAIL, FAILED, reason, run)
    if stopped:
        return Ended(*outcome("stopped", stopped), run)
    if not report:
        return Ended(TrialState.FAIL, FAILED, "removed by Ray before it ran")
    if report.get("final"):
        status, reason = report.get("outcome"), report.get("reason") or ""
        if status in _STATES:
            return Ended(_STATES[status], status, reason, run)
        return Ended(*outcome(report.get("status", FAILED), reason), run)  # a report of old
    reason = "stopped by Ray before its budget (not by the early-stopping rule)"
    return Ended(TrialState.FAIL, FAILED, reason, run)


# --- outcome and finish -------------------------------------------------------------------------


def outcome(run_status: str, stop_reason: str = "") -> tuple[TrialState, str, str]:
    """(state, status, reason) of a trained trial from its run's status (softshare.train)."""
    if run_status == "complete":
        return TrialState.COMPLETE, COMPLETE, ""
    if run_status == "stopped":
        return TrialState.PRUNED, PRUNED, stop_reason
    if run_status == "diverged":
        return TrialState.FAIL, FAILED, f"diverged: {stop_reason}"
    return TrialState.FAIL, FAILED, stop_reason or FAILED


def record_result(trial: optuna.Trial, curve: list, result: dict) -> None:
    """Write what a training result says as user attributes: the ``curve`` (validation
    accuracy per epoch) and the final accuracy, epochs, speed and device found in ``result``
    (a RunResult as a dict, or a Ray report carrying the same keys, and how the trial started:
    nas.schema.START_ATTRS)."""
    trial.set_user_attr("curve", list(curve))
    for key in RESULT_ATTRS + START_ATTRS:
        if key in result:
            trial.set_user_attr(key, result[key])


def finish(ctx: TrialContext, ended: Ended) -> str:
    """Record what the trial came to (its result's attributes, ``trial.json``) and tell the
    study; returns the status. An error the study cannot go on after is re-raised once told."""
    if ended.error is not None and not isinstance(ended.error, KeyboardInterrupt):
        try:  # best effort: the storage may sit on the same full disk
            finish_trial(ctx, ended, record=False)
        except OSError:
            log.debug("could not record trial %d as failed", ctx.number, exc_info=True)
        raise ended.error
    if ended.result is not None:
        run = ended.result.to_dict()
        try:
            curve = [row["val_acc"] for row in ended.result.history]
            record_result(ctx.trial, curve, run | ctx.started)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # finished by another process meanwhile: finish_trial below says so, once
    status = finish_trial(ctx, ended)
    if ended.error is not None:
        raise ended.error
    return status


def finish_trial(ctx: TrialContext, ended: Ended, record: bool = True) -> str:
    """Record ``ended``'s status and reason, write ``trial.json`` in the trial's folder (when
    ``record`` and the folder exists) and tell the study: its values (best validation accuracy,
    parameters) for a complete trial, else its state. Returns the status.

    A trial another process has finished meanwhile (it took this worker for dead) is left as it
    is, said in one warning line; what this worker wrote in its folder stays."""
    trial, status, reason = ctx.trial, ended.status, ended.reason
    try:
        trial.set_user_attr("status", status)
        if reason:
            trial.set_user_attr("reason", reason)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning(
            "trial %d was finished by another process meanwhile (it took this worker for dead); "
            "its record is left as it is, this worker's files stay in its folder",
            trial.number,
        )
        return status
    values = None
    if ended.state == TrialState.COMPLETE:
        values = [ended.result.best_val_acc, ctx.attrs["params"]]
    if record and ctx.folder.is_dir():
        body = trial_record(ctx) | {
            "trial": trial.number,
            "status": status,
            "reason": reason,
            "values": values,
        }
        if ended.result is not None:
            body["result"] = {
                k: v for k, v in ended.result.to_dict().items() if k != "coefficients"
            }
        atomic_write_text(ctx.folder / TRIAL_FILE, dumps(body))
    ctx.study.tell(
        trial, values=values, state=ended.state if values is None else None, skip_if_finished=True
    )
    return status


def recover(study: optuna.Study, trial: optuna.trial.FrozenTrial, study_dir: pathlib.Path) -> bool:
    """Finish a RUNNING trial whose worker died after training, from what it left on disk: its
    ``metrics.json`` says the run ended (complete, stopped by the rule, or diverged). True when
    the trial was finished so (it is not trained again); False when there is nothing to finish
    it from, or another process finished it first."""
    folder = trial_dir(study_dir, trial.number)
    try:
        run = json.loads((folder / METRICS).read_text())
        ended = Ended(*outcome(run["status"], run.get("stop_reason") or ""), snapshot_of(run))
        curve = [row["val_acc"] for row in run["history"]]
        trial.user_attrs["params"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no whole result on disk: the trial is failed and its slot runs again
    if run["status"] not in ("complete", "stopped", "diverged"):
        return False
    live = optuna.Trial(study, trial._trial_id)  # the dead worker's trial, told from here
    try:
        record_result(live, curve, run)
        live.set_user_attr("recovered", "from metrics.json after its worker died")
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another process finished it first
    settle_files(folder)
    attrs = dict(trial.user_attrs)
    ctx = TrialContext(None, study_dir, trial.number, (0, 0, 0), attrs, study, live)
    ctx.extra = {"recovered": True}  # its trial.json: attributes and result, no recipe
    finish_trial(ctx, ended)
    log.warning(
        "trial %d finished training before its worker died; recorded %s from its metrics.json",
        trial.number,
        ended.status,
    )
    return True


# --- failure --------------------------------------------------------------------------------------


def failure_reason(exc: BaseException) -> str:
    """One line for a trial that raised; CUDA's out-of-memory error (or any "out of memory") is named."""
    oom = isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
    reason = f"out of memory: {exc}" if oom else f"{type(exc).__name__}: {exc}"
    return reason.splitlines()[0]  # never empty: it starts with the exception's type


def finite_prefix(curve: list) -> list[float]:
    """A curve up to its first missing or non-finite epoch (a diverged trial ends with None)."""
    out = []
    for value in curve:
        if value is None or not math.isfinite(value):
            break
        out.append(value)
    return out


# --- coefficients -------------------------------------------------------------------------------


def write_coefficients(folder: pathlib.Path, matrices: list[dict] | None) -> None:
    """``coefficients.json``: the final coefficient matrices of the trial's banks (and their
    layer similarity), as :func:`softshare.analysis.coefficient_matrices` gives them."""
    if matrices is not None:
        atomic_write_text(folder / COEFFICIENTS_FILE, dumps(matrices))


def coefficients_from_checkpoint(folder: pathlib.Path) -> list[dict] | None:
    """The coefficient matrices of the trial's last checkpoint, for a run that ended without
    handing back a result (a Ray worker ended by the scheduler); None without a checkpoint."""
    final = folder / CHECKPOINT
    return coefficient_matrices(load(final)) if final.exists() else None


def settle_files(folder: pathlib.Path) -> None:
    """A run that ended without handing back its coefficients (a Ray worker ended by the
    scheduler, a worker that died after training) takes them from its last checkpoint; then
    its weights go."""
    if not (folder / COEFFICIENTS_FILE).is_file():
        write_coefficients(folder, coefficients_from_checkpoint(folder))
    drop_weights(folder)


def drop_weights(folder: pathlib.Path, keep_checkpoints: bool = False) -> None:
    """A search keeps numbers, not weights (retrain starts from the config): drop the checkpoints."""
    if not keep_checkpoints:
        for name in (CHECKPOINT, BEST):
            (folder / name).unlink(missing_ok=True)
