"""Everything a study's report shows, read from the study: :class:`ReportData`.

Everything is read from the study's Optuna storage and folder, so the report works on a study
that is still running, on either backend's studies, and on any study folder written before.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import shlex
from dataclasses import asdict, dataclass
from typing import Any, cast

import optuna

from softshare.learned import group_errors
from softshare.train import CHECKPOINT

from ..config import StudyConfig
from ..fidelity import load_parent, parent_runs
from ..replicates import plan_rows, runs_of, yardstick
from ..schema import (
    COEFFICIENTS_FILE,
    CONFIRM_ATTR,
    LEARNED_PLANS_ATTR,
    RETRAIN_DIR,
    counts_text,
    parent_dir,
    replicate_counts,
    trial_dir,
)
from ..study import open_existing, study_counts
from .results import (
    Reference,
    ReportRow,
    TrialRow,
    front_rows,
    hv_reference,
    hypervolume,
    knee_row,
    trial_rows,
)
from .verdict import Verdict, ties, verdict

__all__ = [
    "HypervolumePoint",
    "ReportData",
    "RetrainResult",
    "report_data",
    "retrain_command",
    "trial_table",
    "table_columns",
    "trials_dataframe",
]


@dataclass(frozen=True)
class RetrainResult:
    """A trial retrained with ``search.py retrain``, as its ``retrain/NNNN/summary.json`` says."""

    test_acc: float
    test_std: float
    seeds: int
    epochs: int
    from_parent: str | None

    @classmethod
    def read(cls, summary: dict[str, Any]) -> RetrainResult:
        return cls(
            test_acc=summary["test_acc_mean"],
            test_std=summary["test_acc_std"],
            seeds=len(summary["seeds"]),
            epochs=summary["recipe"]["epochs"],
            from_parent=summary.get("from_parent"),
        )


@dataclass(frozen=True)
class HypervolumePoint:
    """The hypervolume after ``trial`` (trial order), and the training seconds spent up to it."""

    trial: int
    seconds: float
    value: float


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows (:func:`report_data`).

    ``config``: study.json; ``resolved``: with the preset's defaults; ``rows``: one per
    architecture (nas.replicates.plan_rows of ``runs``, every trial's run); ``front`` and
    ``knee``: the Pareto front of ``rows`` and its best trade-off; ``reference``: the
    hypervolume's reference point; ``hypervolume``: one point per trial, an inherit study's
    parents paid first; ``parents``: nas.fidelity.parent_runs; ``similarity``: per front trial,
    its banks' layer similarity (None without coefficients.json); ``learned``: the study
    attribute learned_plans; ``projection``: per trained parent, the rows of
    softshare.learned.group_errors; ``replicates``, ``confirmed``, ``seed_sd``: the replicate
    runs' counts, the plans confirmed on fresh seeds, the pooled seed SD per epoch; ``counts``:
    trials by status; ``running``: not finished; ``verdict``: does sharing pay?
    """

    name: str
    folder: str
    config: dict[str, Any]
    resolved: dict[str, Any]
    rows: list[ReportRow]
    runs: list[TrialRow]
    replicates: dict[str, int]
    confirmed: list[str] | None
    seed_sd: list[float | None]
    front: list[ReportRow]
    knee: ReportRow
    reference: Reference
    parents: list[dict[str, Any]]
    hypervolume: list[HypervolumePoint]
    similarity: dict[int, list[dict[str, Any]] | None]
    learned: list[dict[str, Any]]
    projection: dict[str, list[dict[str, Any]]]
    counts: dict[str, int]
    running: bool
    environment: dict[str, Any]
    verdict: Verdict


def retrain_command(study_folder: str | os.PathLike, trial: int) -> str:
    return f"python search.py retrain {shlex.quote(str(study_folder))} --pick trial:{trial}"


def report_data(study_folder: str | os.PathLike) -> ReportData:
    """Everything the report shows, read from the study; one-line errors for a non-study or an
    empty one."""
    folder = pathlib.Path(study_folder)
    cfg, study = open_existing(folder)
    trials = study.get_trials(deepcopy=False)
    runs = trial_rows(study)  # every run, replicates included (trials.csv)
    plans = plan_rows(runs)  # one per architecture: its runs' mean and SE from the seeds
    counts = study_counts(study)  # the terminal's count, by the same function
    front_plans = front_rows(plans)
    if not front_plans:
        raise ValueError(
            f"study {cfg.name!r} in {folder} has no completed trial yet "
            f"({counts_text(counts)}); the report needs at least one."
        )
    knee = knee_row(front_plans)  # the front's front is itself: O(front^2), not O(trials^2)
    assert knee is not None  # a front has a knee
    on_front = {r["trial"] for r in front_plans}
    retrained = _retrain_results(folder)
    rows = cast(list[ReportRow], plans)  # the report's keys are set on each row just below
    for r in rows:
        r["accuracy"] = (
            r["val_acc"]
            if r["state"] == "complete"
            else (r["best_val_acc_seen"] if r["state"] == "pruned" else None)
        )
        r["on_front"], r["knee"] = r["trial"] in on_front, r["trial"] == knee["trial"]
        r["retrain"] = retrain_command(folder, r["trial"]) if r["on_front"] else ""
        _set_retrained(r, retrained.get(r["trial"]))
        r["tied_with_next"] = False
    front = cast(list[ReportRow], front_plans)  # the same dicts as in rows
    for r, tied in zip(front, ties(front)):
        r["tied_with_next"] = tied
    _mark_held_up(rows, front)
    reference = hv_reference(rows)
    assert reference is not None  # a front member has a parameter count
    parents = parent_runs(folder)
    return ReportData(
        name=cfg.name,
        folder=str(folder),
        config=cfg.to_dict(),
        resolved=cfg.resolved(),
        rows=rows,
        runs=runs,
        replicates=dict(replicate_counts(trials)),
        confirmed=study.user_attrs.get(CONFIRM_ATTR),
        seed_sd=yardstick(runs_of(trials)),
        front=front,
        knee=cast(ReportRow, knee),
        reference=reference,
        parents=parents,
        hypervolume=_hypervolume_series(
            rows, reference.params, sum(p["train_seconds"] or 0.0 for p in parents)
        ),
        similarity={r["trial"]: _similarity(folder, r["trial"]) for r in front},
        learned=study.user_attrs.get(LEARNED_PLANS_ATTR) or [],
        projection=_projection(folder, cfg, parents),
        counts=dict(counts),
        running=counts["running"] + counts["waiting"] > 0
        or counts["complete"] + counts["pruned"] < cfg.n_trials,
        environment=_environment(cfg, rows),
        verdict=verdict(rows),
    )


def _set_retrained(r: ReportRow, result: RetrainResult | None) -> None:
    """The row's retrain columns: ``result``'s, or None (and 0 seeds) when not retrained."""
    r["retrain_test_acc"] = result.test_acc if result else None
    r["retrain_test_std"] = result.test_std if result else None
    r["retrain_seeds"] = result.seeds if result else 0
    r["retrain_epochs"] = result.epochs if result else None
    r["retrain_from"] = result.from_parent if result else None


def _mark_held_up(rows: list[ReportRow], front: list[ReportRow]) -> None:
    """``held_up`` of each plan confirmed on fresh seeds: True when it was on the front the
    search saw (its first run's accuracy) and is on the front of the means, False when it was and
    is no longer; None for every other plan."""
    single: list[ReportRow] = [
        {**r, "val_acc": r["single_val_acc"]} for r in rows if r.get("single_val_acc") is not None
    ]
    seen = {r["trial"] for r in front_rows(single)}
    final = {r["trial"] for r in front}
    for r in rows:
        confirmed = (r.get("n_runs") or 0) > 1 and r["trial"] in seen
        r["held_up"] = (r["trial"] in final) if confirmed else None


def _retrain_results(folder: pathlib.Path) -> dict[int, RetrainResult]:
    """Test accuracy of each trial retrained with ``search.py retrain`` (its ``summary.json``), by trial."""
    out = {}
    for path in sorted((folder / RETRAIN_DIR).glob("[0-9][0-9][0-9][0-9]/summary.json")):
        try:
            summary = json.loads(path.read_text())
            out[int(summary["trial"])] = RetrainResult.read(summary)
        except (OSError, ValueError, KeyError, TypeError):  # being written, or edited by hand
            continue
    return out


def _hypervolume_series(
    rows: list[ReportRow], reference_params: float, parent_seconds: float = 0.0
) -> list[HypervolumePoint]:
    """Hypervolume after each trial (trial order) and the training seconds spent up to it; an
    inherit study's parents are paid before its first trial (``parent_seconds``)."""
    series, seconds = [], parent_seconds
    front: list[ReportRow] = []
    for r in rows:
        if r["status"] != "duplicate":  # a duplicate re-uses a result: no compute spent
            seconds += r["train_seconds"] or 0.0
        if r["state"] == "complete" and r["status"] != "duplicate":  # others cannot change it
            front = front_rows(front + [r])  # the front of all trials so far
        series.append(HypervolumePoint(r["trial"], seconds, hypervolume(front, reference_params)))
    return series


def _similarity(folder: pathlib.Path, trial: int) -> list[dict[str, Any]] | None:
    """|cos| between the layers of each bank, as the trial recorded it (coefficients.json)."""
    path = trial_dir(folder, trial) / COEFFICIENTS_FILE
    try:
        return [
            {k: b[k] for k in ("bank", "layers", "templates", "similarity")}
            for b in json.loads(path.read_text())
        ]
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
    ):  # absent (not trained, plain net) or unreadable
        return None


def _projection(
    folder: pathlib.Path, cfg: StudyConfig, parents: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """For each trained parent (name -> rows): how well every candidate group of its trained
    kernels fits a bank of each size the space allows (softshare.learned.group_errors: stage,
    start, stop, templates, squared, relative)."""
    out = {}
    space = cfg.search_space()
    for p in parents:
        if p["status"] != "complete":
            continue
        checkpoint = parent_dir(folder, p["name"]) / CHECKPOINT
        try:
            stat = checkpoint.stat()
            key = (str(checkpoint.resolve()), stat.st_mtime_ns, stat.st_size, repr(space))
            if key not in _PROJECTIONS:  # the live report refreshes every minute: load once
                model = load_parent(folder, p["name"])
                errors = group_errors(model, space.template_choices)
                _PROJECTIONS[key] = [asdict(g) for g in errors]
        except (OSError, ValueError, RuntimeError):  # being written, or not one of ours
            continue
        out[p["name"]] = _PROJECTIONS[key]
    return out


# A parent's group errors by its checkpoint (path, mtime, size) and the space (the bank sizes it
# allows): a checkpoint rewritten (a parent trained again) is read again.
_PROJECTIONS: dict[tuple[str, int, int, str], list[dict[str, Any]]] = {}


def _environment(cfg: StudyConfig, rows: list[ReportRow]) -> dict[str, Any]:
    started = [r["started"] for r in rows if r["started"]]
    finished = [r["finished"] for r in rows if r["finished"]]
    return {
        "devices": sorted({r["device"] for r in rows if r["device"]}),
        "versions": cfg.versions
        | {
            "python (report)": platform.python_version(),
            "optuna (report)": optuna.__version__,
            "plotly (report)": importlib.metadata.version("plotly"),
            "pandas (report)": importlib.metadata.version("pandas"),
        },
        "created": cfg.created,
        "first trial started": min(started, default=""),
        "last trial finished": max(finished, default=""),
        "report written": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


# --- the trials table (trials.csv, trials_dataframe) -------------------------------------------

# The columns a notebook reads first, in this order; every other column of the table follows.
FRAME_FIRST = (
    "trial",
    "role",
    "replicate_of",
    "plan",
    "plan_name",
    "depth",
    "width",
    "params",
    "macs",
    "status",
    "val_acc",
    "val_se",
    "seed",
    "plan_val_acc",
    "plan_val_se",
    "n_runs",
    "seeds",
    "epochs",
    "curve",
)


def trials_dataframe(study_folder: str | os.PathLike) -> Any:
    """The study as a pandas DataFrame, one row per trial (replicates included), as Optuna users
    know ``study.trials_dataframe()``: what ``trials.csv`` holds.

    ``val_acc``/``val_se`` are the trial's own run (its objective, binomial SE); ``plan_val_acc``,
    ``plan_val_se``, ``n_runs`` and ``seeds`` are its architecture's, over every seed it trained
    with (:func:`nas.replicates.plan_rows`); ``role`` is baseline, searched or replicate."""
    import pandas as pd

    table = trial_table(report_data(study_folder))
    frame = pd.DataFrame(table)
    return frame[table_columns(table)]


def trial_table(data: ReportData) -> list[dict[str, Any]]:
    """One row per trial (replicates included) with the columns of the plan rows: its plan's
    report columns (front, knee, retrain, seeds, ...) and its own run's values."""
    of_trial: dict[int, ReportRow] = {}
    for row in data.rows:
        for trial in [s["trial"] for s in row.get("seeds") or []] or [row["trial"]]:
            of_trial[trial] = row
    table = []
    for run in data.runs:
        plan: dict[str, Any] = dict(of_trial.get(run["trial"], {}))
        own = run["val_acc"] if run["state"] == "complete" else run["best_val_acc_seen"]
        accuracy = own if run["state"] in ("complete", "pruned") else None
        of_plan = {"plan_val_acc": plan.get("val_acc"), "plan_val_se": plan.get("val_se")}
        table.append(
            {k: plan.get(k) for k in data.rows[0]}
            | plan
            | dict(run)
            | of_plan
            | {"accuracy": accuracy}
        )
    return table


def table_columns(table: list[dict[str, Any]]) -> list[str]:
    """The columns of :func:`trials_dataframe`: FRAME_FIRST, then every other key in order."""
    seen = dict.fromkeys(k for r in table for k in r)
    return [c for c in FRAME_FIRST if c in seen] + [c for c in seen if c not in FRAME_FIRST]
