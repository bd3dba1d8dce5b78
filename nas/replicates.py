"""Runs of one architecture with other seeds: the noise yardstick, one point per architecture,
and the confirmation of the front on fresh seeds (issue 22).

Entry points: :func:`top_up` (queue what is due), :func:`yardstick`, :func:`plan_rows`.

Design: docs/design.md#nasreplicates
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from .early_stop import Decision, StopRule, decide
from .noise import CLAIM_Z, binomial_se, seed_sd
from .report.results import PlanRow, TrialRow, completed_rows, front_rows, trial_rows
from .schema import (
    BASELINE_ATTR,
    CONFIRM_ATTR,
    DUPLICATE,
    NOISE_ATTR,
    REPLICATE_ATTR,
    TAKES_SLOT,
    has_fixed_plan,
    is_replicate,
    status_counts,
)
from .trial import finite_prefix

__all__ = [
    "Run",
    "confirm_set",
    "judge",
    "mean_curves",
    "plan_rows",
    "runs_of",
    "search_done",
    "top_up",
    "yardstick",
]

MAX_REPLICATE_FAILURES = 2  # a (plan, seed) that failed this often is not queued again


# --- the runs and the stopping rule --------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One trained or training run, as the stopping rule sees it."""

    number: int
    plan: str
    curve: tuple[float, ...]  # validation accuracy per epoch, up to the first non-finite one
    params: int
    fixed: bool = False  # a baseline or a replicate: never stopped


def runs_of(trials) -> list[Run]:
    """What the stopping rule judges a trial against, the same on every backend: each trial's
    curve up to its first non-finite epoch (a diverged trial's epochs before it count), its
    parameters and its plan (a trial with no plan recorded is its own, ``#N``); trials without
    a curve or a size are left out."""
    runs = []
    for t in trials:
        a = t.user_attrs
        curve, params = finite_prefix(a.get("curve") or []), a.get("params")
        if curve and params:
            plan = a.get("plan") or f"#{t.number}"
            runs.append(Run(t.number, plan, tuple(curve), int(params), has_fixed_plan(a)))
    return runs


def _groups(runs: Sequence[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.plan, []).append(r)
    return groups


def yardstick(runs: Sequence[Run]) -> list[float | None]:
    """The pooled seed SD at each epoch over every architecture with two or more runs
    (:func:`nas.noise.seed_sd`); an empty list while there is no such architecture."""
    groups = [[list(r.curve) for r in g] for g in _groups(runs).values() if len(g) > 1]
    return seed_sd(groups) if groups else []


def mean_curves(runs: Sequence[Run]) -> list[tuple[list[float], int]]:
    """One (curve, params) per architecture: at each epoch the mean over its runs that reached
    it. A rung then compares architectures, not runs (a baseline with two seeds is one point)."""
    out = []
    for g in _groups(runs).values():
        longest = max(len(r.curve) for r in g)
        curve = [
            sum(r.curve[e] for r in g if len(r.curve) > e) / sum(len(r.curve) > e for r in g)
            for e in range(longest)
        ]
        out.append((curve, g[0].params))
    return out


def judge(
    number: int, plan: str, curve: Sequence[float], params: int, fixed: bool, runs, rule: StopRule
) -> Decision:
    """The stopping rule for run ``number`` (``curve`` so far) against every other run of the
    study: never for a fixed-plan run (baselines and replicates train their full budget); else
    :func:`nas.early_stop.decide` against one mean curve per other architecture, with the
    margin from the study's seed SD at the rung (:func:`yardstick`)."""
    if fixed:
        return Decision(stop=False)
    others = [r for r in runs if r.number != number and r.plan != plan]
    return decide(list(curve), params, mean_curves(others), rule, noise=yardstick(list(runs)))


# --- one point per architecture ------------------------------------------------------------------


def _run_groups(rows: list[dict]) -> dict[object, list[dict]]:
    """The complete runs grouped by architecture: each complete trial that is not a replicate
    opens a group, and a replicate joins its original's (or, where that run did not complete,
    the first complete trial of its plan). Trials are never grouped by plan text alone: only a
    replicate says it repeats another trial."""
    done = completed_rows(rows)
    originals = {r["trial"]: r for r in done if r.get("replicate_of") is None}
    first_of_plan: dict[str, int] = {}
    for r in originals.values():
        first_of_plan.setdefault(r["plan"], r["trial"])
    groups: dict[object, list[dict]] = {}
    for r in done:
        key = r["trial"]
        if r.get("replicate_of") is not None:
            key = r["replicate_of"] if r["replicate_of"] in originals else None
            key = key if key is not None else first_of_plan.get(r["plan"], ("plan", r["plan"]))
        groups.setdefault(key, []).append(r)
    return groups


def final_sd(rows: list[dict]) -> float | None:
    """The pooled seed SD of the complete runs' accuracies (the objective), over every
    architecture with two or more of them; None without one."""
    groups = [[[r["val_acc"]] for r in g] for g in _run_groups(rows).values() if len(g) > 1]
    sd = seed_sd(groups)
    return sd[0] if sd else None


def plan_rows(rows: Sequence[TrialRow]) -> list[PlanRow]:
    """One row per architecture, from the trial rows of :func:`nas.report.results.trial_rows`.

    Complete runs of one architecture (a trial and its replicates, :func:`_run_groups`) become
    one row: the original's row (the first complete run when the original did not complete)
    with ``val_acc`` the mean of the runs' accuracies and ``val_se`` sqrt(s^2 / n + b^2), s the
    study's pooled seed SD (:func:`final_sd`), n the runs and b the binomial error of the mean on
    the validation set (its images are shared by every plan, so counting b whole is
    conservative). Without a seed SD (no architecture has two runs) it is b alone, as before
    replicates. Added keys: ``seeds`` (one dict per run: trial, seed, val_acc), ``n_runs``,
    ``single_val_acc`` (the original run's own accuracy, what the search saw) and ``seed_sd``.
    Rows of other trials (stopped, failed, running) are kept as they are, replicates that did
    not complete are left out. Rows merged already (they have ``n_runs``) are returned as they
    are."""
    if any("n_runs" in r for r in rows):
        return list(rows)
    sd = final_sd(rows)
    groups = _run_groups(rows)

    def first_of(group: list[dict]) -> dict:  # its original, else its first run
        return next((g for g in group if g.get("replicate_of") is None), group[0])

    lead = {first_of(g)["trial"]: g for g in groups.values()}
    members = {r["trial"] for g in groups.values() for r in g}
    out = []
    for r in rows:
        group = lead.get(r["trial"])
        if group is not None:
            first = first_of(group)
            accs = [g["val_acc"] for g in group]
            mean = sum(accs) / len(accs)
            b = binomial_se(mean, first["val_images"])
            se = math.sqrt(sd**2 / len(accs) + b**2) if sd is not None else b
            out.append(
                first
                | {
                    "val_acc": mean,
                    "val_se": se,
                    "n_runs": len(group),
                    "single_val_acc": first["val_acc"],
                    "seed_sd": sd,
                    "seeds": [
                        {"trial": g["trial"], "seed": g.get("seed"), "val_acc": g["val_acc"]}
                        for g in group
                    ],
                }
            )
        elif r["trial"] not in members and r.get("replicate_of") is None:
            out.append(r)  # not complete: as it is
    return out


# --- queueing replicates ------------------------------------------------------------------------


def _gap_z(front: list[dict], r: dict) -> float:
    """How many SE of the difference the front member that beats ``r`` (not on the front) by
    most is ahead of it, at equal or fewer parameters; 0 when none is."""
    return max(
        (
            (f["val_acc"] - r["val_acc"])
            / (math.hypot(f["val_se"] or 0.0, r["val_se"] or 0.0) or 1e-12)
            for f in front
            if f["params"] <= r["params"]
        ),
        default=0.0,
    )


def _within_noise_of_front(rows: list[dict], cap: int = 0) -> list[dict]:
    """The front of ``rows`` (complete plan rows) and every row that no front member beats by
    more than CLAIM_Z standard errors of the difference (``val_se`` of each); with ``cap`` > 0
    at most ``cap`` plans but for the front and those baselines, which are always kept; the rest
    nearest to the front (smallest gap) first."""
    front = front_rows(rows)
    near = sorted(
        ((_gap_z(front, r), r["params"], r["trial"], r) for r in rows if r not in front),
        key=lambda x: x[:3],
    )
    within = [r for z, *_, r in near if z <= CLAIM_Z]
    if cap:  # the front and the baselines in reach (the verdict's yardsticks) always
        baselines = [r for r in within if r.get("baseline")]
        others = [r for r in within if not r.get("baseline")]
        within = baselines + others[: max(cap - len(front) - len(baselines), 0)]
    chosen = front + within
    return sorted(chosen, key=lambda r: (r["params"], r["trial"]))


def confirm_set(rows: list[dict], cap: int = 0) -> list[dict]:
    """The plans to confirm on fresh seeds: the Pareto front of the complete architectures (one
    point each, :func:`plan_rows`) and every one within CLAIM_Z SE of it, fewest params first;
    ``cap`` > 0: the front and the baselines within reach always, then the plans nearest to
    the front up to ``cap`` in all."""
    return _within_noise_of_front(completed_rows(plan_rows(rows)), cap)


def search_done(trials, n_trials: int) -> bool:
    """The search budget is spent: every slot is taken by a finished architecture, and no trial
    of the search (replicates aside) is running or queued."""
    counts = status_counts(trials)
    live = counts["running"] + counts["waiting"]
    return not live and sum(counts[s] for s in TAKES_SLOT) >= n_trials


def _queue(study: optuna.Study, original: dict, seed: int) -> None:
    study.enqueue_trial(
        {},
        user_attrs={
            REPLICATE_ATTR: original["number"],
            "seed": seed,
            "plan": original["plan"],
            "plan_name": original["plan_name"],
            BASELINE_ATTR: original["baseline"],
        },
    )


def _missing(trials, plan: str, seeds: Iterable[int]) -> list[int]:
    """Seeds of ``plan`` with no run that is complete, stopped, running or queued, and that has
    not already failed MAX_REPLICATE_FAILURES times."""
    have, failures = set(), {}
    for t in trials:
        a = t.user_attrs
        if a.get("plan") != plan or a.get("seed") is None:
            continue
        if t.state == TrialState.FAIL:
            if a.get("status") != DUPLICATE:
                failures[a["seed"]] = failures.get(a["seed"], 0) + 1
        else:
            have.add(a["seed"])
    return [s for s in seeds if s not in have and failures.get(s, 0) < MAX_REPLICATE_FAILURES]


def _originals(trials) -> dict[str, dict]:
    """Plan text -> its original trial (number, plan, name, baseline), first trial first."""
    out: dict[str, dict] = {}
    for t in trials:
        a = t.user_attrs
        if a.get("plan") and not is_replicate(t) and a.get("plan") not in out:
            out[a["plan"]] = {
                "number": t.number,
                "plan": a["plan"],
                "plan_name": a.get("plan_name", ""),
                "baseline": bool(a.get(BASELINE_ATTR)),
            }
    return out


def top_up(study: optuna.Study, cfg, rows_of=None, search_over: bool = False) -> int:
    """Queue the replicates the study lacks; returns how many were queued.

    * Each baseline's seeds ``seed + 1 .. seed + baseline_seeds - 1``, as soon as it is queued.
    * Once the search is done (:func:`search_done`) and ``confirm_seeds`` > 0: the plans of
      :func:`confirm_set` (at most ``confirm_max`` of them when set), chosen once (study attribute ``confirmation``) and each trained with
      seeds ``seed + 1 .. seed + confirm_seeds``, the runs it already has counted.

    A replicate that failed (a kill, a dead worker) is queued again, up to
    MAX_REPLICATE_FAILURES failures of one seed. ``rows_of`` turns trials into report rows
    (default :func:`nas.report.results.trial_rows` of the study); ``search_over``: the search ended
    before its budget (an exhausted space), nothing of it running. Call it under the slot lock."""
    trials = study.get_trials(deepcopy=False)
    originals, queued = _originals(trials), 0
    wanted: list[tuple[dict, list[int]]] = []
    extra = range(cfg.seed + 1, cfg.seed + cfg.baseline_seeds)
    wanted += [(o, list(extra)) for o in originals.values() if o["baseline"]]
    confirmed = study.user_attrs.get(CONFIRM_ATTR)
    if (
        confirmed is None
        and cfg.confirm_seeds > 0
        and (search_over or search_done(trials, cfg.n_trials))
    ):
        rows = (rows_of or trial_rows)(study)
        confirmed = list(dict.fromkeys(r["plan"] for r in confirm_set(rows, cfg.confirm_max)))
        study.set_user_attr(CONFIRM_ATTR, confirmed)
    fresh = list(range(cfg.seed + 1, cfg.seed + 1 + cfg.confirm_seeds))
    wanted += [(originals[p], fresh) for p in confirmed or () if p in originals]
    asked: set[tuple[str, int]] = set()  # a plan both baseline and confirmed: each seed once
    for original, seeds in wanted:
        for seed in _missing(trials, original["plan"], seeds):
            if (original["plan"], seed) not in asked:
                asked.add((original["plan"], seed))
                _queue(study, original, seed)
                queued += 1
    return queued


def record_noise(study: optuna.Study) -> list[float | None]:
    """Store the study's seed SD per epoch as a study attribute (``seed_sd``), for the dashboard
    and the report; returns it."""
    sd = yardstick(runs_of(study.get_trials(deepcopy=False)))
    if sd != study.user_attrs.get(NOISE_ATTR):
        study.set_user_attr(NOISE_ATTR, sd)
    return sd
