"""One trial's record, the same on every backend: describe it, skip it, judge its outcome,
finish it, name its failure, keep its coefficients.

A trial's life: its plan is described (:func:`trial_attrs`, user attributes written before
training); an architecture another trial trains, or one over ``--max-params``, is skipped
(:func:`skip_reason`, :func:`finish_skipped`: never trained, no slot); a trained one ends
complete (values: best validation accuracy, parameters), pruned by the stopping rule (its curve
kept) or failed (diverged, out of memory, an exception, a dead worker: the reason is kept and the
study goes on) (:func:`outcome`, :func:`finish_trial`), with ``trials/NNNN/trial.json``.
The backends (:mod:`nas.optuna_backend`, :mod:`nas.ray_search`) only decide *when* each step runs.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib

import optuna
import torch
from optuna.trial import TrialState

from softshare import ModelConfig, SharingPlan, parse_plan
from softshare.analysis import coefficient_matrices
from softshare.checkpoint import atomic_write_text, dumps
from softshare.data import Dataset
from softshare.evaluate import load
from softshare.train import BEST, CHECKPOINT, METRICS, RunResult

from .config import StudyConfig
from .fidelity import TrialStart, trial_recipe, trial_start
from .schema import (
    BASELINE_ATTR,
    COEFFICIENTS_FILE,
    COMPLETE,
    DUPLICATE,
    FAILED,
    OVER_BUDGET,
    PRUNED,
    REPLICATE_ATTR,
    RESULT_ATTRS,
    START_ATTRS,
    TRAINED,
    TRIAL_FILE,
    has_fixed_plan,
    trial_dir,
)
from .space import define_space, plan_from_params
from .storage import study_lock, worker_identity

log = logging.getLogger(__name__)
CLAIMED_ATTR = "claimed"  # user attribute: True once the trial holds its architecture (claim)

__all__ = [
    "begin_training",
    "claim",
    "coefficients_from_checkpoint",
    "data_shape",
    "describe",
    "describe_attrs",
    "run_seed",
    "drop_weights",
    "duplicate_of",
    "failure_reason",
    "finish_skipped",
    "finish_run",
    "finish_trial",
    "finite_prefix",
    "outcome",
    "plan_of",
    "record_result",
    "recover",
    "skip_reason",
    "trial_attrs",
    "trial_plan",
    "trial_record",
    "val_images",
    "write_coefficients",
]


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
    seed: int | None,
    val_size: int | None = None,
    baseline: bool = False,
    replicate_of: int | None = None,
) -> dict:
    """What a trial records about its architecture before training; ``shape`` as :func:`data_shape`;
    ``replicate_of``: the trial whose architecture a replicate run trains again."""
    classes, channels, size = shape
    return {
        "plan": plan.text,
        "plan_name": plan.name,
        "shared": plan.is_shared,
        "depth": plan.depth,
        "width": plan.width,
        "templates": plan.templates_per_group(),
        "params": plan.num_parameters(classes, channels),
        "macs": plan.multiply_adds(size, classes, channels),
        "seed": seed,
        "val_images": val_size,
        BASELINE_ATTR: baseline,
        REPLICATE_ATTR: replicate_of,
        "worker": worker_identity(),
    }


def run_seed(user_attrs: dict, study_seed: int) -> int:
    """The training seed of a trial: a replicate's own, else the study's."""
    if user_attrs.get(REPLICATE_ATTR) is not None and user_attrs.get("seed") is not None:
        return int(user_attrs["seed"])
    return study_seed


def describe_attrs(
    plan: SharingPlan, user_attrs: dict, cfg: StudyConfig, shape: tuple, val_size: int | None
) -> dict:
    """:func:`trial_attrs` of a live trial's ``plan``: its role and seed as it was queued with
    (``user_attrs``), the same on every backend."""
    return trial_attrs(
        plan,
        shape,
        run_seed(user_attrs, cfg.seed),
        val_size,
        bool(user_attrs.get(BASELINE_ATTR)),
        user_attrs.get(REPLICATE_ATTR),
    )


def plan_of(user_attrs: dict, params: dict) -> SharingPlan:
    """A trial's plan: a baseline's fixed plan (in its user attributes), else its sampled params."""
    if has_fixed_plan(user_attrs):
        return parse_plan(user_attrs["plan"])
    return plan_from_params(params)


def trial_plan(trial: optuna.Trial, space) -> SharingPlan:
    """The plan of a live ``trial``: it asks ``space`` (a baseline asks nothing), then :func:`plan_of`."""
    define_space(trial, space)
    return plan_of(trial.user_attrs, trial.params)


def describe(
    trial: optuna.Trial, cfg: StudyConfig, shape: tuple[int, int, int], val_size: int | None
) -> tuple[ModelConfig, dict]:
    """Ask ``trial`` its plan, write its description as user attributes; (model config, attrs)."""
    plan = trial_plan(trial, cfg.search_space())
    attrs = describe_attrs(plan, trial.user_attrs, cfg, shape, val_size)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return ModelConfig(plan.text, num_classes=shape[0], in_channels=shape[1]), attrs


def trial_record(attrs: dict, cfg: StudyConfig, shape: tuple[int, int, int], **extra) -> dict:
    """The body of ``trial.json``: what the trial is and how it was trained (``extra`` added)."""
    model_config = ModelConfig(attrs["plan"], num_classes=shape[0], in_channels=shape[1])
    return {
        "attrs": attrs,
        "model_config": model_config.to_dict(),
        "train_config": trial_recipe(
            cfg, cfg.train_config(seed=run_seed(attrs, cfg.seed))
        ).to_dict(),
        "data_config": cfg.data_config().to_dict(),
        "fidelity": {k: getattr(cfg, k) for k in ("fidelity", "inherit_epochs", "inherit_lr")},
    } | extra


def begin_training(
    trial: optuna.Trial,
    cfg: StudyConfig,
    study_dir: pathlib.Path,
    data: Dataset,
    model_config: ModelConfig,
) -> TrialStart:
    """How ``trial`` starts (:func:`nas.fidelity.trial_start`: from scratch, or from its
    parent, trained first if no trial needed it before), written as its user attributes."""
    recipe = cfg.train_config(seed=run_seed(trial.user_attrs, cfg.seed))
    start = trial_start(cfg, study_dir, data, model_config, recipe)
    for key, value in start.attrs.items():
        trial.set_user_attr(key, value)
    return start


# --- skip ---------------------------------------------------------------------------------------


def duplicate_of(
    study: optuna.Study, plan: str, number: int, replicate_seed: int | None = None
) -> optuna.trial.FrozenTrial | None:
    """Another trial that trains or trained the same architecture (running with its claim,
    :func:`claim`, or completed or stopped by the rule), or ``None`` when the architecture is
    new to the study. For a replicate run (``replicate_seed`` given), another run of the same
    architecture with the same seed: a replicate queued twice."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    for t in study.get_trials(deepcopy=False, states=states):
        if t.number == number or t.user_attrs.get("plan") != plan:
            continue
        if replicate_seed is None and t.user_attrs.get(REPLICATE_ATTR) is not None:
            continue  # a replicate repeats an architecture whose own trial counts
        if replicate_seed is not None and t.user_attrs.get("seed") != replicate_seed:
            continue
        if t.state == TrialState.RUNNING and t.user_attrs.get(CLAIMED_ATTR):
            return t
        if t.user_attrs.get("status") in TRAINED:
            return t
    return None


def claim(
    study: optuna.Study,
    cfg: StudyConfig,
    trial: optuna.Trial,
    attrs: dict,
    folder: pathlib.Path,
) -> tuple[str, str] | None:
    """:func:`skip_reason` for a trial about to train, and, when it may, its architecture
    claimed for it: the check and the claim are one step under the study's lock
    (:func:`nas.storage.study_lock`, across machines on PostgreSQL), so of two workers with the
    same plan exactly one trains, whichever order they wrote and looked in (writing the plan
    first and judging twins by age let both train)."""
    with study_lock(study, folder, "claims"):
        if (skip := skip_reason(study, cfg, trial.number, attrs)) is not None:
            return skip
        trial.set_user_attr(CLAIMED_ATTR, True)
    return None


def skip_reason(
    study: optuna.Study, cfg: StudyConfig, number: int, attrs: dict
) -> tuple[str, str] | None:
    """(status, reason) when trial ``number`` must not train: over ``max_params``, or an
    architecture another trial trains or trained (on the same data with the same seed it would
    learn the same curve); ``None`` when it trains. The sampler (:mod:`nas.sampler`) already
    proposes only new plans within the budget: this catches what slips past it (two workers
    proposing one plan at the same moment, a baseline queued twice)."""
    if cfg.max_params is not None and attrs["params"] > cfg.max_params:
        reason = f"{attrs['params']:,} parameters > max_params {cfg.max_params:,}; not trained"
        return OVER_BUDGET, reason
    seed = attrs["seed"] if attrs.get(REPLICATE_ATTR) is not None else None
    if (twin := duplicate_of(study, attrs["plan"], number, seed)) is not None:
        return DUPLICATE, f"same architecture as trial {twin.number}; not trained"
    return None


def finish_skipped(
    study: optuna.Study,
    trial: optuna.Trial,
    status: str,
    reason: str,
    max_params: int | None = None,
) -> str:
    """End a trial that :func:`skip_reason` said not to train; it takes no slot. Over the budget:
    PRUNED with a violated constraint (the sampler learns the budget). A duplicate: FAIL, so the
    storage never holds a COMPLETE copy of another trial's result (one would pull TPE back to
    the same spot)."""
    if status == OVER_BUDGET:
        trial.set_constraint("max_params", float(trial.user_attrs["params"] - max_params))
        return finish_trial(study, trial, TrialState.PRUNED, status, reason)
    return finish_trial(study, trial, TrialState.FAIL, status, reason)


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


def finish_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    state: TrialState,
    status: str,
    reason: str = "",
    values: list[float] | None = None,
    folder: pathlib.Path | None = None,
    record: dict | None = None,
) -> str:
    """Record ``status`` and ``reason``, write ``folder/trial.json`` (when a folder is given) and
    tell the study: ``values`` for a complete trial, else ``state``. Returns ``status``.

    A trial another process has finished meanwhile (it took this worker for dead) is left as it
    is, said in one warning line; what this worker wrote in ``folder`` stays."""
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
    if folder is not None:
        body = (record or {}) | {
            "trial": trial.number,
            "status": status,
            "reason": reason,
            "values": values,
        }
        atomic_write_text(folder / TRIAL_FILE, dumps(body))
    study.tell(
        trial, values=values, state=state if values is None else None, skip_if_finished=True
    )
    return status


def finish_run(
    study: optuna.Study,
    trial: optuna.Trial,
    result: RunResult,
    params: int,
    folder: pathlib.Path,
    record: dict,
) -> str:
    """Finish a trial that trained to ``result``: its attributes, coefficients and outcome."""
    as_dict = result.to_dict()
    write_coefficients(folder, result.coefficients)
    try:
        record_result(trial, [row["val_acc"] for row in result.history], as_dict)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # finished by another process meanwhile: finish_trial below says so, once
    state, status, reason = outcome(result.status, result.stop_reason)
    values = [result.best_val_acc, params] if state == TrialState.COMPLETE else None
    record = record | {"result": {k: v for k, v in as_dict.items() if k != "coefficients"}}
    return finish_trial(study, trial, state, status, reason, values, folder, record)


def recover(study: optuna.Study, trial: optuna.trial.FrozenTrial, study_dir: pathlib.Path) -> bool:
    """Finish a RUNNING trial whose worker died after training, from what it left on disk: its
    ``metrics.json`` says the run ended (complete, stopped by the rule, or diverged). True when
    the trial was finished so (it is not trained again); False when there is nothing to finish
    it from, or another process finished it first."""
    folder = trial_dir(study_dir, trial.number)
    try:
        run = json.loads((folder / METRICS).read_text())
        state, status, reason = outcome(run["status"], run.get("stop_reason") or "")
        curve = [row["val_acc"] for row in run["history"]]
        params = trial.user_attrs["params"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no whole result on disk: the trial is failed and its slot runs again
    if run["status"] not in ("complete", "stopped", "diverged"):
        return False
    values = [run["best_val_acc"], params] if state == TrialState.COMPLETE else None
    live = optuna.Trial(study, trial._trial_id)  # the dead worker's trial, told from here
    try:
        record_result(live, curve, run)
        live.set_user_attr("recovered", "from metrics.json after its worker died")
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another process finished it first
    if not (folder / COEFFICIENTS_FILE).is_file():
        write_coefficients(folder, coefficients_from_checkpoint(folder))
    drop_weights(folder)
    record = {"attrs": dict(trial.user_attrs), "result": run, "recovered": True}
    finish_trial(study, live, state, status, reason, values, folder, record)
    log.warning(
        "trial %d finished training before its worker died; recorded %s from its metrics.json",
        trial.number,
        status,
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


def drop_weights(folder: pathlib.Path, keep_checkpoints: bool = False) -> None:
    """A search keeps numbers, not weights (retrain starts from the config): drop the checkpoints."""
    if not keep_checkpoints:
        for name in (CHECKPOINT, BEST):
            (folder / name).unlink(missing_ok=True)
