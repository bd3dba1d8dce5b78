"""One trial: take its plan (sampled, or a baseline's), train it with Pareto-aware early stopping,
record what happened.

Outcomes, each recorded in the trial's user attributes and folder (``trials/NNNN/trial.json``):
complete (values: best validation accuracy, parameters), pruned by the stopping rule (its
curve kept), failed (diverged, out of memory, an exception: the reason is kept and the study
goes on). Rarely, and never trained, taking no slot: over-budget (``--max-params``) and
duplicate (another trial trains the same architecture): the sampler wrapper keeps both out, so
these only mark races between workers.
"""

from __future__ import annotations

import logging
import math
import pathlib
import threading
import traceback
from dataclasses import replace

import optuna
import torch
from optuna.trial import TrialState

from softshare import ModelConfig, SharingPlan, parse_plan
from softshare.analysis import coefficient_matrices
from softshare.checkpoint import atomic_write_text, dumps
from softshare.data import Dataset
from softshare.evaluate import load
from softshare.train import BEST, CHECKPOINT, EpochMetrics, train

from .config import StudyConfig
from .early_stop import decide
from .sampler import OVER_BUDGET
from .space import BASELINE_ATTR, define_space, plan_from_params
from .storage import HEARTBEAT_S, worker_identity

__all__ = [
    "data_shape",
    "duplicate_of",
    "failure_reason",
    "finish_skipped",
    "finish_trial",
    "run_trial",
    "save_coefficients",
    "skip_reason",
    "trial_attrs",
    "trial_dir",
    "trial_plan",
    "val_images",
    "stop_rule_for",
]

log = logging.getLogger(__name__)


def trial_dir(study_dir: pathlib.Path, number: int) -> pathlib.Path:
    return study_dir / "trials" / f"{number:04d}"


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


def data_shape(data: Dataset) -> tuple[int, int, int]:
    """(classes, channels, image side) of ``data``: what a plan's size and cost depend on."""
    return data.num_classes, data.train.images.shape[1], data.train.images.shape[-1]


def val_images(data: Dataset) -> int | None:
    """Size of the validation split (what an accuracy's standard error depends on), or None."""
    return len(data.val.labels) if data.val is not None else None


def trial_attrs(
    plan: SharingPlan,
    shape: tuple[int, int, int],
    seed: int,
    val_size: int | None = None,
    baseline: bool = False,
) -> dict:
    """What a trial records about its architecture before training; ``shape`` as :func:`data_shape`."""
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
        "worker": worker_identity(),
    }


def trial_plan(trial: optuna.Trial, space) -> SharingPlan:
    """The plan of ``trial``: a baseline's fixed plan, else what it asks of ``space``."""
    define_space(trial, space)
    if trial.user_attrs.get(BASELINE_ATTR):
        return parse_plan(trial.user_attrs["plan"])
    return plan_from_params(trial.params)


def _describe(trial: optuna.Trial, cfg: StudyConfig, data: Dataset) -> tuple[ModelConfig, dict]:
    plan = trial_plan(trial, cfg.search_space())
    classes, channels, _ = shape = data_shape(data)
    attrs = trial_attrs(
        plan, shape, cfg.seed, val_images(data), bool(trial.user_attrs.get(BASELINE_ATTR))
    )
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return ModelConfig(plan.text, num_classes=classes, in_channels=channels), attrs


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
    tell the study: ``values`` for a complete trial, else ``state``. Returns ``status``."""
    trial.set_user_attr("status", status)
    if reason:
        trial.set_user_attr("reason", reason)
    if folder is not None:
        atomic_write_text(
            folder / "trial.json",
            dumps(
                (record or {})
                | {"trial": trial.number, "status": status, "reason": reason, "values": values}
            ),
        )
    study.tell(trial, values=values, state=state if values is None else None)
    return status


def duplicate_of(study: optuna.Study, plan: str, number: int) -> optuna.trial.FrozenTrial | None:
    """Another trial that trains or trained the same architecture (running, completed or stopped by
    the rule), or ``None`` when the architecture is new to the study."""
    for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    ):
        if t.number == number or t.user_attrs.get("plan") != plan:
            continue
        if (
            t.state == TrialState.RUNNING and t.number < number
        ):  # of two running twins the older one trains
            return t
        if t.user_attrs.get("status") in ("complete", "pruned"):
            return t
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
        return (
            OVER_BUDGET,
            f"{attrs['params']:,} parameters > max_params {cfg.max_params:,}; not trained",
        )
    if (twin := duplicate_of(study, attrs["plan"], number)) is not None:
        return "duplicate", f"same architecture as trial {twin.number}; not trained"
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


def failure_reason(exc: BaseException) -> str:
    """One line for a trial that raised; CUDA's out-of-memory error (or any "out of memory") is named."""
    oom = isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
    reason = f"out of memory: {exc}" if oom else f"{type(exc).__name__}: {exc}"
    return reason.splitlines()[0]  # never empty: it starts with the exception's type


def _finite_prefix(curve: list) -> list[float]:
    """A curve up to its first missing or non-finite epoch (a diverged trial ends with None)."""
    out = []
    for value in curve:
        if value is None or not math.isfinite(value):
            break
        out.append(value)
    return out


def stop_rule_for(cfg: StudyConfig, val_size: int | None):
    """The study's stopping rule, with the validation set's size for its noise margin."""
    rule = cfg.stop_rule()
    return (
        rule
        if rule.val_images is not None or val_size is None
        else replace(rule, val_images=val_size)
    )


def _callback(study: optuna.Study, trial: optuna.Trial, attrs: dict, cfg: StudyConfig, reporter):
    rule, curve = stop_rule_for(cfg, attrs["val_images"]), []

    def on_epoch(m: EpochMetrics):
        curve.append(m.val_acc)
        trial.set_user_attr("curve", curve)
        trial.set_user_attr("worker", worker_identity())
        others = [
            (_finite_prefix(t.user_attrs["curve"]), t.user_attrs["params"])
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number
            and t.user_attrs.get("curve")
            and t.user_attrs.get("params")
        ]
        decision = decide(curve, attrs["params"], others, rule)
        if reporter is not None:
            reporter.epoch(trial.number, m)
        return decision.reason if decision.stop else None

    return on_epoch


def save_coefficients(folder: pathlib.Path, keep_checkpoints: bool) -> None:
    """Write ``coefficients.json`` from the trial's last checkpoint; drop the weights unless kept."""
    final = folder / CHECKPOINT
    if final.exists():
        atomic_write_text(folder / "coefficients.json", dumps(coefficient_matrices(load(final))))
    if not keep_checkpoints:  # a search keeps numbers, not weights: retrain starts from the config
        for name in (CHECKPOINT, BEST):
            (folder / name).unlink(missing_ok=True)


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    cfg: StudyConfig,
    data: Dataset,
    study_dir: pathlib.Path,
    reporter=None,
    keep_checkpoints: bool = False,
) -> str:
    """Run ``trial`` to its end and tell the study; returns the status recorded."""
    model_config, attrs = _describe(trial, cfg, data)
    folder = trial_dir(study_dir, trial.number)
    if reporter is not None:
        reporter.trial_start(trial.number, attrs)
    if (skip := skip_reason(study, cfg, trial.number, attrs)) is not None:
        return finish_skipped(study, trial, *skip, max_params=cfg.max_params)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "attrs": attrs,
        "model_config": model_config.to_dict(),
        "train_config": cfg.train_config().to_dict(),
        "data_config": cfg.data_config().to_dict(),
    }
    try:
        with _Heartbeat(trial):
            result = train(
                model_config,
                cfg.train_config(),
                data,
                data_config=cfg.data_config(),
                out_dir=folder,
                callback=_callback(study, trial, attrs, cfg, reporter),
            )
    except KeyboardInterrupt:
        finish_trial(
            study, trial, TrialState.FAIL, "failed", "interrupted", folder=folder, record=record
        )
        raise
    except Exception as exc:  # the study goes on; the reason stays with the trial
        atomic_write_text(folder / "error.txt", traceback.format_exc())
        return finish_trial(
            study,
            trial,
            TrialState.FAIL,
            "failed",
            failure_reason(exc),
            folder=folder,
            record=record,
        )
    for key in (
        "final_val_acc",
        "epochs_run",
        "train_seconds",
        "images_per_s",
        "device",
        "precision",
    ):
        trial.set_user_attr(key, getattr(result, key))
    trial.set_user_attr("curve", [row["val_acc"] for row in result.curve])
    record["result"] = result.to_dict()
    save_coefficients(folder, keep_checkpoints)
    if result.status == "completed":
        return finish_trial(
            study,
            trial,
            TrialState.COMPLETE,
            "complete",
            values=[result.best_val_acc, attrs["params"]],
            folder=folder,
            record=record,
        )
    if result.status == "stopped":
        return finish_trial(
            study,
            trial,
            TrialState.PRUNED,
            "pruned",
            result.stop_reason,
            folder=folder,
            record=record,
        )
    return finish_trial(
        study,
        trial,
        TrialState.FAIL,
        "failed",
        f"diverged: {result.stop_reason}",
        folder=folder,
        record=record,
    )
