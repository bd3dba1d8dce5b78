"""Learned plans (``--learned-plans N``, issue 23): sharing plans read from a trained parent's
kernels, queued right after the baselines, before the sampler guesses (:func:`queue_learned`).

Design: docs/design.md#naslearned
"""

from __future__ import annotations

import logging
import math
import pathlib
from dataclasses import replace

import optuna

from softshare import learned_plans, parse_plan
from softshare.data import Dataset

from .config import StudyConfig
from .fidelity import ensure_parent, load_parent, parent_name, parent_names
from .schema import LEARNED_ATTR, LEARNED_PLANS_ATTR
from .space import SearchSpace, params_from_plan, smallest_plan
from .storage import study_lock
from .study import slots_left
from .trial import data_shape

__all__ = ["METRIC", "learned_budgets", "choose_learned", "queue_learned"]

log = logging.getLogger(__name__)
# The error a learned plan minimises: the sum of its groups' relative errors (bench_learned.py
# measures it against the total squared error).
METRIC = "relative"


def learned_budgets(smallest: int, largest: int, n: int) -> list[int]:
    """``n`` parameter budgets spread evenly in log10 strictly between ``smallest`` and
    ``largest``, at fractions 1/(n+1) .. n/(n+1) of the way (one budget: their geometric mean).
    The ends are left out: at the smallest budget the plan is the uniform one-template net, and
    at the plain net's count it is the plain net but for a group or two, and the study trains
    those already as baselines."""
    if n <= 0 or largest < smallest:
        return []
    step = math.log(largest / smallest) / (n + 1)
    return [round(smallest * math.exp(step * i)) for i in range(1, n + 1)]


def choose_learned(
    cfg: StudyConfig, parents: dict, shape: tuple[int, ...] = (10, 3)
) -> list[dict]:
    """The learned plans of the study: per depth and width of its space (``parents[name]`` the
    trained plain WRN of that shape), ``cfg.learned_plans`` budgets from the shape's smallest plan
    to its plain net (or ``max_params``), each budget's plan of least projection error; a plan
    found for two budgets once. Rows: plan, plan_name, parent, budget, params, projection_error."""
    space = cfg.search_space()
    classes, channels = shape[0], shape[1]
    rows, seen = [], set()
    for depth in space.depths:
        for width in space.widths:
            one: SearchSpace = replace(space, depths=(depth,), widths=(width,))
            smallest = smallest_plan(one, classes, channels)
            if smallest is None:
                continue
            name = parent_name(depth, width)
            plain = parents[name].config.sharing_plan.num_parameters(classes, channels)
            top = plain if cfg.max_params is None else min(plain, cfg.max_params)
            budgets = learned_budgets(
                smallest.num_parameters(classes, channels), top, cfg.learned_plans
            )
            found = learned_plans(
                parents[name],
                budgets,
                templates=space.template_choices,
                cuts=space.allow_cuts,
                error=METRIC,
            )
            for budget, learned in zip(budgets, found):
                if learned is None or learned.plan.text in seen:
                    continue
                seen.add(learned.plan.text)
                rows.append(
                    {
                        "plan": learned.plan.text,
                        "plan_name": learned.plan.name,
                        "parent": name,
                        "budget": budget,
                        "params": learned.plan.num_parameters(classes, channels),
                        "projection_error": learned.error,
                    }
                )
    return rows


def queue_learned(
    study: optuna.Study,
    cfg: StudyConfig,
    folder: pathlib.Path,
    data: Dataset,
) -> list[str]:
    """Queue the study's learned plans once (after training the parents they need; a trained
    parent is loaded, not trained again); returns their names, empty when they are off or were
    queued before. Plans a trial already holds (a baseline's, say) are left out, and no more are
    queued than the study has slots left."""
    if not cfg.learned_plans or LEARNED_PLANS_ATTR in study.user_attrs:
        return []
    names = parent_names(cfg.search_space())
    for name in names:  # outside the study's lock: minutes each, and they lock themselves
        ensure_parent(cfg, folder, data, name)
    with study_lock(study, folder):
        if LEARNED_PLANS_ATTR in study.user_attrs:  # another worker queued them meanwhile
            return []
        parents = {name: load_parent(folder, name) for name in names}
        held = {t.user_attrs.get("plan") for t in study.get_trials(deepcopy=False)}
        rows = [r for r in choose_learned(cfg, parents, data_shape(data)) if r["plan"] not in held]
        rows = rows[: max(0, slots_left(study, cfg.n_trials))]
        for row in rows:
            study.enqueue_trial(
                params_from_plan(parse_plan(row["plan"])),
                user_attrs={LEARNED_ATTR: True, "plan_name": row["plan_name"]},
            )
        study.set_user_attr(LEARNED_PLANS_ATTR, rows)
    for row in rows:
        log.info(
            "learned plan %s (%s params, budget %s, error %.3f from %s) queued",
            row["plan_name"],
            f"{row['params']:,}",
            f"{row['budget']:,}",
            row["projection_error"],
            row["parent"],
        )
    return [r["plan_name"] for r in rows]
