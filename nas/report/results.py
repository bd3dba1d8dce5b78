"""A study's trials as plain rows, its Pareto front, and the front as a terminal table.

Rows are what the report, the CSV files, the progress lines and ``retrain --pick`` read; they
hold test-free metrics only (model selection never sees the test set). Each kind of row declares
every key it carries: :class:`TrialRow` (one run), :class:`PlanRow` (one architecture, its runs
merged by :func:`nas.replicates.plan_rows`) and :class:`ReportRow` (a plan row of the report).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, TypeVar

import optuna

from ..noise import binomial_se
from ..pareto import hypervolume_2d, knee_point, pareto_front
from ..schema import (
    COMPLETE,
    DIRECTIONS,
    DUPLICATE,
    REPLICATE_ATTR,
    SCRATCH,
    role_of,
    status_of,
)

__all__ = [
    "trial_rows",
    "completed_rows",
    "front_rows",
    "fidelity_text",
    "format_table",
    "knee_row",
    "hypervolume",
    "hv_reference",
    "HV_REFERENCE_ACC",
    "HV_REFERENCE_FACTOR",
    "Reference",
    "TrialRow",
    "PlanRow",
    "ReportRow",
    "SeedRun",
]

# The hypervolume's reference point, the one definition: 0 accuracy, and HV_REFERENCE_FACTOR x
# the largest parameter count of the study.
HV_REFERENCE_ACC = 0.0
HV_REFERENCE_FACTOR = 10


class TrialRow(TypedDict):
    """One run of the study (``trials.csv``): :func:`trial_rows`.

    ``val_acc`` is the objective (best validation accuracy) of a complete trial, else None;
    ``val_se`` its binomial standard error on ``val_images`` images (0.0 when unknown);
    ``state`` the Optuna state and ``status`` the vocabulary's word (:func:`status_of`);
    ``fidelity`` where the accuracy comes from (scratch, or inherit from ``parent`` with
    ``inherit_epochs`` of fine-tuning and ``projection_error`` the largest of its groups)."""

    trial: int
    state: str
    status: str
    plan: str
    plan_name: str
    shared: bool | None
    depth: int | None
    width: int | None
    templates: list | None
    params: int | None
    macs: int | None
    val_acc: float | None
    best_val_acc_seen: float | None
    final_val_acc: float | None
    epochs: int | None
    curve: list
    train_seconds: float | None
    images_per_s: float | None
    reason: str
    device: str
    seed: int | None
    duplicate_of: int | None
    baseline: bool
    val_images: int | None
    started: str | None
    finished: str | None
    val_se: float | None
    fidelity: str
    parent: str | None
    inherit_epochs: int | None
    projection_error: float | None
    role: str
    replicate_of: int | None


class SeedRun(TypedDict):
    """One run of a plan: its trial, seed and accuracy."""

    trial: int
    seed: int | None
    val_acc: float | None


class PlanRow(TrialRow, total=False):
    """One architecture: a trial row, and for a plan with complete runs (nas.replicates.plan_rows)
    ``val_acc`` their mean, ``val_se`` its error and these; ``at_epoch`` on a copy of a row as it
    stood after that epoch (nas.report.verdict)."""

    n_runs: int
    single_val_acc: float | None
    seed_sd: float | None
    seeds: list[SeedRun]
    at_epoch: int


class ReportRow(PlanRow):
    """A plan row of the report: its accuracy (val acc, or the best seen when stopped), place on
    the front, retrain command and result (``retrain/NNNN/summary.json``), and noise marks."""

    accuracy: float | None
    on_front: bool
    knee: bool
    retrain: str
    retrain_test_acc: float | None
    retrain_test_std: float | None
    retrain_seeds: int
    retrain_epochs: int | None
    retrain_from: str | None
    tied_with_next: bool
    held_up: bool | None


Row = TypeVar("Row", bound=TrialRow)


@dataclass(frozen=True)
class Reference:
    """The hypervolume's reference point in (accuracy, parameters)."""

    accuracy: float
    params: int


def hv_reference(rows: Sequence[TrialRow]) -> Reference | None:
    """The study's reference point: (HV_REFERENCE_ACC, HV_REFERENCE_FACTOR x its largest model),
    or None when no row has a parameter count."""
    sizes = [r["params"] for r in rows if r["params"]]
    return Reference(HV_REFERENCE_ACC, HV_REFERENCE_FACTOR * max(sizes)) if sizes else None


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    """One dict per trial, in trial order; ``val_acc`` is the objective (best validation accuracy),
    ``val_se`` its binomial standard error on ``val_images`` validation images (0.0 when the
    count is unknown), ``baseline`` True for the study's reference plans (plain WRN, SWRN-d-k-s)."""
    rows: list[TrialRow] = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        curve = list(a.get("curve") or [])
        best_seen = max((v for v in curve if v is not None), default=None)
        val_acc = t.values[0] if t.values else None
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "status": status_of(t),
                "plan": a.get("plan", ""),
                "plan_name": a.get("plan_name", ""),
                "shared": a.get("shared"),
                "depth": a.get("depth"),
                "width": a.get("width"),
                "templates": a.get("templates"),
                "params": a.get("params"),
                "macs": a.get("macs"),
                "val_acc": val_acc,
                "best_val_acc_seen": best_seen,
                "final_val_acc": a.get("final_val_acc"),
                "epochs": len(curve) or a.get("epochs_run"),
                "curve": curve,
                "train_seconds": a.get("train_seconds"),
                "images_per_s": a.get("images_per_s"),
                "reason": a.get("reason", ""),
                "device": a.get("device", ""),
                "seed": a.get("seed"),
                "duplicate_of": a.get("duplicate_of"),
                "baseline": bool(a.get("baseline")),
                "val_images": a.get("val_images"),
                "started": t.datetime_start.isoformat(timespec="seconds")
                if t.datetime_start
                else None,
                "finished": t.datetime_complete.isoformat(timespec="seconds")
                if t.datetime_complete
                else None,
                "fidelity": a.get("fidelity") or SCRATCH,  # studies before --fidelity: scratch
                "parent": a.get("parent"),
                "inherit_epochs": a.get("inherit_epochs"),
                "projection_error": a.get("projection_error"),
                "role": role_of(a),
                "replicate_of": a.get(REPLICATE_ATTR),
                "val_se": binomial_se(val_acc, a.get("val_images"))
                if val_acc is not None
                else None,
            }
        )
    return rows


def completed_rows(rows: Sequence[Row]) -> list[Row]:
    """Trials trained to their budget with an accuracy and a size, each architecture once (a
    duplicate repeats another trial's numbers)."""
    return [
        r
        for r in rows
        if r["state"] == COMPLETE
        and r["val_acc"] is not None
        and r["params"]
        and r["status"] != DUPLICATE
    ]


def front_rows(rows: Sequence[Row]) -> list[Row]:
    """Completed trials on the Pareto front of (val accuracy max, params min), fewest params first."""
    done = completed_rows(rows)
    front = pareto_front([(r["val_acc"], r["params"]) for r in done], DIRECTIONS)
    return [done[i] for i in front]


def knee_row(rows: Sequence[Row]) -> Row | None:
    """The front's knee (best trade-off) in (accuracy, log10 params) space, or None."""
    front = front_rows(rows)
    if not front:
        return None
    points = [(r["val_acc"], math.log10(r["params"])) for r in front]
    return front[knee_point(points, DIRECTIONS)]


def hypervolume(rows: Sequence[TrialRow], max_params: float) -> float:
    """Area dominated in (accuracy, log10 params) up to (HV_REFERENCE_ACC, log10(max_params))."""
    points = [(r["val_acc"], math.log10(r["params"])) for r in completed_rows(rows)]
    return hypervolume_2d(points, (HV_REFERENCE_ACC, math.log10(max_params)), DIRECTIONS)


def fidelity_text(row: TrialRow) -> str:
    """Where a row's accuracy comes from: 'scratch', or 'inherit WRN-16-1' (its parent)."""
    if row.get("fidelity") == SCRATCH or not row.get("parent"):
        return row.get("fidelity") or SCRATCH
    return f"{row['fidelity']} {row['parent']}"


def _role_mark(row: TrialRow) -> str:
    """`` (baseline)`` or `` (learned)`` after a plan's name; nothing for a searched one."""
    role = row.get("role") or ("baseline" if row.get("baseline") else "")
    return f" ({role})" if role in ("baseline", "learned") else ""


def format_table(
    rows: Sequence[TrialRow], knee: TrialRow | None = None, limit: int | None = None
) -> str:
    """A small fixed-width table of trials (the front, usually); ``epochs`` are a trial's own
    (an inherit trial's fine-tuning), ``fidelity`` where its accuracy comes from."""
    header = (
        f"{'trial':>5}  {'val acc':>7}  {'params':>11}  {'mult-adds':>13}  {'epochs':>6}  "
        f"{'fidelity':<16}  plan"
    )
    lines = [header, "-" * len(header)]
    shown = rows if limit is None else rows[:limit]
    for r in shown:
        mark = "  <- knee" if knee is not None and r["trial"] == knee["trial"] else ""
        acc = f"{r['val_acc']:.2%}" if r["val_acc"] is not None else "-"
        lines.append(
            f"{r['trial']:>5}  {acc:>7}  {r['params'] or 0:>11,}  {r['macs'] or 0:>13,}  "
            f"{r['epochs'] or 0:>6}  {fidelity_text(r):<16}  {r['plan_name'] or r['plan']}{_role_mark(r)}"
            f"{mark}"
        )
    if limit is not None and len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more")
    return "\n".join(lines)
