"""What a study is, on disk and in its storage: the objectives, the folder layout, the status
vocabulary and the keys of a trial's record. Every other module takes these names from here.

A leaf module: it imports nothing of ``nas``.

Design: docs/design.md#nasschema
"""

from __future__ import annotations

import pathlib
from collections import Counter
from typing import Literal

# --- the objectives ---------------------------------------------------------------------------
# A trial's values, in Optuna's order: best validation accuracy (up) and parameters (down).
OBJECTIVES: tuple[str, str] = ("val_acc", "params")
DIRECTIONS: tuple[Literal["maximize"], Literal["minimize"]] = ("maximize", "minimize")

# --- the folder layout ------------------------------------------------------------------------
STUDY_FILE = "study.json"
JOURNAL_FILE = "journal.log"
TRIALS_DIR = "trials"
TRIAL_FILE = "trial.json"
COEFFICIENTS_FILE = "coefficients.json"
ERROR_FILE = "error.txt"
REPORT_DIR = "report"
RETRAIN_DIR = "retrain"
RAY_DIR = "ray"
PARENTS_DIR = "parents"


def trial_dir(study_dir: str | pathlib.Path, number: int) -> pathlib.Path:
    """``study_dir/trials/NNNN``: what trial ``number`` wrote."""
    return pathlib.Path(study_dir) / TRIALS_DIR / f"{number:04d}"


def retrain_dir(study_dir: str | pathlib.Path, number: int) -> pathlib.Path:
    """``study_dir/retrain/NNNN``: the retrains of trial ``number``."""
    return pathlib.Path(study_dir) / RETRAIN_DIR / f"{number:04d}"


def parent_dir(study_dir: str | pathlib.Path, name: str) -> pathlib.Path:
    """``study_dir/parents/NAME``: the parent ``name`` (``WRN-d-k``) an inherit study trained."""
    return pathlib.Path(study_dir) / PARENTS_DIR / name


# --- where a trial's accuracy comes from --------------------------------------------------------
# scratch: trained from a random initialisation for the study's budget; inherit: started from
# the trained plain WRN of its depth and width (softshare.inherit), then fine-tuned (nas.fidelity).
SCRATCH, INHERIT = "scratch", "inherit"
FIDELITIES = (SCRATCH, INHERIT)


# --- the status vocabulary --------------------------------------------------------------------
# A finished trial's user attribute "status". Trained: complete (to its full budget), pruned
# (stopped by the rule), failed (diverged, raised, or its worker died). Never trained and taking
# no slot: duplicate (another trial trains the same architecture) and over-budget (over
# --max-params). An unfinished trial's status is its Optuna state: running or waiting.
COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"
DUPLICATE, OVER_BUDGET = "duplicate", "over-budget"
RUNNING, WAITING = "running", "waiting"
STATUSES = (COMPLETE, PRUNED, FAILED, DUPLICATE, OVER_BUDGET, RUNNING, WAITING)
TRAINED = (COMPLETE, PRUNED)  # a result the study keeps: the architecture is never trained again
UNTRAINED = (DUPLICATE, OVER_BUDGET)  # recorded, never trained, no slot
TAKES_SLOT = (COMPLETE, PRUNED, RUNNING, WAITING)  # a failed trial's slot runs again


def is_replicate(trial) -> bool:
    """Whether an Optuna (frozen) trial is a replicate run of another trial's architecture."""
    return trial.user_attrs.get(REPLICATE_ATTR) is not None


def has_fixed_plan(user_attrs: dict) -> bool:
    """A trial whose plan is fixed before it starts (a baseline or a replicate): it asks the
    sampler nothing, and the stopping rule never stops it (its full budget is the yardstick)."""
    return bool(user_attrs.get(BASELINE_ATTR)) or user_attrs.get(REPLICATE_ATTR) is not None


def role_of(user_attrs: dict) -> str:
    """baseline, replicate, learned or searched: what a trial is in the study."""
    if user_attrs.get(REPLICATE_ATTR) is not None:
        return "replicate"
    if user_attrs.get(BASELINE_ATTR):
        return "baseline"
    return "learned" if user_attrs.get(LEARNED_ATTR) else "searched"


# Failures that belong to the plan, not to the run, by the start of their reason
# (nas.trial.failure_reason, nas.devices.oom_reason): trained again, the plan fails again. The
# same seed and recipe diverge the same way; under the same memory cap (a card, or a worker's
# share of one) the same plan and batch need the same memory.
_PLAN_FAILURES = (
    ("diverged", "diverged"),
    ("out of GPU memory", "out of memory"),
    ("out of memory", "out of memory"),
)


def plan_failure(reason: str) -> str | None:
    """ "diverged" or "out of memory" when a failed trial's ``reason`` says its plan would fail
    again; None when the failure was the run's (a dead worker, an interrupt, an exception)."""
    reason = str(reason or "")
    return next((why for start, why in _PLAN_FAILURES if reason.startswith(start)), None)


def status_of(trial) -> str:
    """The status of an Optuna (frozen) trial in the vocabulary above."""
    state = trial.state.name.lower()
    if state in (RUNNING, WAITING):
        return state
    status = trial.user_attrs.get("status")
    if status in STATUSES:
        return status
    return {"complete": COMPLETE, "pruned": PRUNED}.get(state, FAILED)


def status_counts(trials) -> Counter:
    """Architectures per status (:func:`status_of`); the terminal, the report and the slot count
    all count with it. Replicates are left out (they repeat an architecture counted already):
    :func:`replicate_counts` counts them."""
    return Counter(status_of(t) for t in trials if not is_replicate(t))


def replicate_counts(trials) -> Counter:
    """Replicate runs per status."""
    return Counter(status_of(t) for t in trials if is_replicate(t))


def counts_text(counts: Counter) -> str:
    """``counts`` as one phrase in the vocabulary's order, e.g. "5 complete, 15 pruned"."""
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s)) or "no trials"


# --- a trial's record -------------------------------------------------------------------------
BASELINE_ATTR = "baseline"  # user attribute: True for a queued paper baseline (nas.baselines)
PROPOSAL_ATTR = "proposal"  # user attribute: how the sampler found the architecture
BASELINES_ATTR = "baselines"  # study attribute: the baseline plans queued when it was created
LEARNED_ATTR = (
    "learned"  # user attribute: True for a plan read from a trained parent (nas.learned)
)
LEARNED_PLANS_ATTR = "learned_plans"  # study attribute: the learned plans queued, once
# A replicate: the same architecture trained again with another seed (a baseline's second seed,
# or a front plan confirmed on fresh seeds). User attributes: REPLICATE_ATTR (the number of the
# trial it repeats), "seed", and the fixed "plan". It takes no slot, is never a new
# architecture, and is never told to the sampler as a proposal (it asks no parameters).
REPLICATE_ATTR = "replicate_of"
CONFIRM_ATTR = "confirmation"  # study attribute: the plans confirmed on fresh seeds, once queued
NOISE_ATTR = "seed_sd"  # study attribute: the pooled seed SD at each epoch (nas.noise.seed_sd)
# What a trained trial records from its training result: user attribute -> RunResult field.
RESULT_ATTRS = (
    "final_val_acc",
    "epochs_run",
    "train_seconds",
    "images_per_s",
    "device",
    "precision",
)
# What a trial records of how it started (nas.fidelity.trial_start): user attribute names, the
# same keys in a Ray report. "fidelity" is scratch or inherit; the others are an inherit trial's.
START_ATTRS = (
    "fidelity",
    "inherit_epochs",
    "inherit_lr",
    "parent",
    "parent_val_acc",
    "parent_epochs",
    "projection_error",
)
