"""The reference plans every study trains beside its search: does a searched sharing plan beat them?

A few plain WRN-d-k and SWRN-d-k-s plans, spread over the space's parameter range, enqueued
once when the study is created (:func:`baseline_plans`).

Design: docs/design.md#nasbaselines
"""

from __future__ import annotations

import logging
import math

import optuna

from softshare import SharingPlan, parse_plan

from .schema import BASELINE_ATTR, FAILED, TAKES_SLOT, is_replicate, plan_failure, status_of
from .space import SearchSpace

__all__ = [
    "BASELINE_CHOICES",
    "baseline_budget",
    "baseline_candidates",
    "baseline_plans",
    "baseline_count",
    "requeue_failed_baselines",
]

log = logging.getLogger(__name__)
# A queued baseline's user attributes (nas.study.enqueue_baselines): what a re-queued one copies.
QUEUED_ATTRS = (BASELINE_ATTR, "plan", "plan_name")
# Tries of one baseline before it is left failed: a baseline that raises every time (not a
# property of its plan that the reason shows) must not take a trial of every slot.
MAX_BASELINE_TRIES = 3

BASELINE_CHOICES = ("paper", "paper:N", "none")


def baseline_budget(n_trials: int) -> int:
    """How many of ``n_trials`` slots the baselines may take: a quarter, at least one from 2 trials."""
    return 0 if n_trials < 2 else max(1, n_trials // 4)


def baseline_count(choice: str, n_trials: int) -> int:
    """Baselines a study queues: ``"paper"`` a quarter of ``n_trials``, ``"paper:N"`` N of them (a
    fixed set whatever the trial budget: two studies compared side by side share it), ``"none"`` 0."""
    if choice == "none":
        return 0
    if choice == "paper":
        return baseline_budget(n_trials)
    head, _, count = str(choice).partition(":")
    if head != "paper" or not count.isdigit() or not 1 <= int(count) <= n_trials:
        raise ValueError(
            f"unknown baselines {choice!r}; accepted: paper, paper:N (1 <= N <= n_trials = "
            f"{n_trials}), none."
        )
    return int(count)


def baseline_candidates(space: SearchSpace) -> tuple[list[SharingPlan], list[SharingPlan]]:
    """(plain WRNs, uniform SWRNs) over the space's depths, widths and bank sizes."""
    plain, shared = [], []
    for depth in space.depths:
        layers = 2 * ((depth - 4) // 6 - 1)
        sizes = [t for t in space.template_choices(layers) if t > 0]
        for width in space.widths:
            plain.append(parse_plan(f"WRN-{depth}-{width}"))
            shared += [parse_plan(f"SWRN-{depth}-{width}-{s}") for s in sizes]
    return plain, shared


def baseline_plans(
    space: SearchSpace,
    budget: int,
    shape: tuple[int, int] = (10, 3),
    max_params: int | None = None,
) -> list[SharingPlan]:
    """``budget`` baselines over ``space`` (fewer if the space has fewer), smallest first.

    ``shape`` is (classes, input channels) for the parameter counts; plans over ``max_params``
    are left out."""
    size = {}
    plain, shared = (
        [p for p in family if _fits(p, shape, max_params, size)]
        for family in baseline_candidates(space)
    )
    n_plain = min(len(plain), max(1, budget // 2)) if budget else 0
    chosen = _spread(plain, n_plain, [], size)
    chosen += _spread(shared, budget - len(chosen), chosen, size)
    return sorted(chosen, key=lambda p: size[p.text])


def _fits(plan: SharingPlan, shape: tuple[int, int], max_params: int | None, size: dict) -> bool:
    size[plan.text] = plan.num_parameters(*shape)
    return max_params is None or size[plan.text] <= max_params


def _spread(
    plans: list[SharingPlan], k: int, chosen: list[SharingPlan], size: dict
) -> list[SharingPlan]:
    """``k`` of ``plans`` spread over log10(params): greedily the one farthest from all chosen so far
    (with nothing chosen yet: the smallest, then the largest)."""
    left = sorted(plans, key=lambda p: (size[p.text], p.text))
    picked: list[SharingPlan] = []
    while left and len(picked) < k:
        taken = chosen + picked
        if not taken:
            best = left[0]
        elif len(taken) == 1 and not chosen:
            best = left[-1]
        else:
            best = max(
                left,
                key=lambda p: min(
                    abs(math.log10(size[p.text]) - math.log10(size[q.text])) for q in taken
                ),
            )
        picked.append(best)
        left.remove(best)
    return picked


def requeue_failed_baselines(study: optuna.Study) -> list[str]:
    """Queue again, as a baseline, each baseline whose trials all failed for a reason of the run
    (interrupted, its worker died, an exception), at most MAX_BASELINE_TRIES tries; returns
    their plans. Not one that diverged or ran out of memory (it would again,
    :func:`nas.schema.plan_failure`), nor one whose plan a trial holds a slot for (trained,
    running or queued). Its failed slot is free, so the baseline takes it back before a
    searched plan can: call it where a slot is taken, under the lock that guards the count."""
    # a baseline's original run only: its replicates (further seeds) are nas.replicates.top_up's
    trials = [t for t in study.get_trials(deepcopy=False) if not is_replicate(t)]
    holding = {t.user_attrs.get("plan") for t in trials if status_of(t) in TAKES_SLOT}
    failed: dict[str, list] = {}
    for t in trials:
        if t.user_attrs.get(BASELINE_ATTR) and status_of(t) == FAILED:
            failed.setdefault(t.user_attrs.get("plan"), []).append(t)
    queued = []
    for plan, tries in failed.items():
        if plan is None or plan in holding or len(tries) >= MAX_BASELINE_TRIES:
            continue
        if any(plan_failure(t.user_attrs.get("reason")) for t in tries):
            continue
        attrs = {k: tries[-1].user_attrs[k] for k in QUEUED_ATTRS if k in tries[-1].user_attrs}
        study.enqueue_trial({}, user_attrs=attrs)
        queued.append(plan)
        log.warning(
            "baseline %s failed (%s); queued again",
            attrs.get("plan_name", plan),
            tries[-1].user_attrs.get("reason", "no reason recorded"),
        )
    return queued
