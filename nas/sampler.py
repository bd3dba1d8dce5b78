"""A sampler wrapper that proposes only new, trainable architectures.

:class:`ArchitectureSampler` wraps any Optuna sampler and draws again, before a trial asks its
first value, when the proposal is taken, a plain WRN or over ``max_params``;
:class:`SpaceExhausted` ends the study when no unseen architecture is left.

Design: docs/design.md#nassampler
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from softshare import SharingPlan

from .schema import OVER_BUDGET, PROPOSAL_ATTR, has_fixed_plan
from .space import (
    SearchSpace,
    all_plans,
    define_space,
    params_from_plan,
    plan_from_params,
    random_plan,
)
from .trial import taken, trial_attrs

__all__ = ["ArchitectureSampler", "SpaceExhausted", "PROPOSAL_ATTR", "OVER_BUDGET"]

log = logging.getLogger(__name__)
RANDOM_DRAWS = (
    2000  # unseen-architecture draws before a space too large to list is called exhausted
)


class SpaceExhausted(RuntimeError):
    """Every architecture of the space (within the budget) has been trained or is being trained."""


class _StandIn:
    """A trial-like object for define_space: records what is asked, answers from ``answer``."""

    user_attrs: dict = {}

    def __init__(self, answer: Callable[[str, BaseDistribution], Any]) -> None:
        self.answer = answer
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}

    def suggest_categorical(self, name: str, choices: Sequence) -> Any:
        distribution = CategoricalDistribution(list(choices))
        value = (
            distribution.choices[0] if distribution.single() else self.answer(name, distribution)
        )
        self.params[name], self.distributions[name] = value, distribution
        return value


class ArchitectureSampler(BaseSampler):
    """Wraps ``inner`` so every trial it proposes is a new, trainable shared architecture.

    Args:
        inner: the sampler that proposes first (TPE, NSGA-II, random).
        space: the search space the study's trials ask through :func:`define_space`.
        shape: (classes, input channels[, image side]) of the data, for parameter counts.
        max_params: the parameter budget, or None.
        seed: seeds the random fallback.
        attempts: draws from ``inner`` before the random fallback, >= 1.
    """

    def __init__(
        self,
        inner: BaseSampler,
        space: SearchSpace,
        shape: tuple[int, ...],
        max_params: int | None,
        seed: int | None = None,
        attempts: int = 10,
    ) -> None:
        if not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"attempts must be an integer >= 1, but got {attempts=}.")
        self.inner, self.space, self.shape, self.max_params = (
            inner,
            space,
            tuple(shape),
            max_params,
        )
        self.attempts, self._rng = attempts, random.Random(seed)
        self._proposals: dict[int, tuple[dict, dict]] = {}
        self._listed: list[SharingPlan] | None | bool = (
            False  # False: not listed yet; None: too many
        )

    # --- BaseSampler ------------------------------------------------------------------------

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if has_fixed_plan(trial.user_attrs) or trial.system_attrs.get("fixed_params"):
            return {}  # a baseline's or replicate's plan, or values a user enqueued: not ours
        params, distributions, info = self._propose(study, trial)
        self._proposals[trial._trial_id] = (params, distributions)
        study._storage.set_trial_user_attr(trial._trial_id, PROPOSAL_ATTR, info)
        return distributions

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        params, _ = self._proposals.pop(trial._trial_id, ({}, {}))
        return params

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
        self._rng.seed()

    # --- proposals --------------------------------------------------------------------------

    def exhausted(self, study: optuna.Study) -> bool:
        """True when no architecture of the space is left to train (exact for listable spaces)."""
        plans = self._all_plans()
        if plans is None:
            return False
        taken = self._taken(study)
        return not any(p.text not in taken and self._affordable(p) for p in plans)

    def _propose(self, study: optuna.Study, trial: FrozenTrial) -> tuple[dict, dict, dict]:
        taken, rejected = self._taken(study, trial.number), Counter()
        for attempt in range(1, self.attempts + 1):
            stand_in = self._ask_inner(study, trial)
            plan = plan_from_params(stand_in.params)
            why = self._rejection(plan, taken)
            if why is None:
                return stand_in.params, stand_in.distributions, _info("sampler", attempt, rejected)
            rejected[why] += 1
            if why == OVER_BUDGET:
                self._record_over_budget(study, plan, stand_in)
                taken[plan.text] = OVER_BUDGET
        plan = self._unseen_random(taken)
        values = params_from_plan(plan)
        stand_in = _StandIn(lambda name, _d: values[name])
        define_space(stand_in, self.space)
        return stand_in.params, stand_in.distributions, _info("random", self.attempts, rejected)

    def _ask_inner(self, study: optuna.Study, trial: FrozenTrial) -> _StandIn:
        """The inner sampler's proposal, answered as Optuna's Trial would: relative values, then independent."""
        relative_space = self.inner.infer_relative_search_space(study, trial)
        relative = self.inner.sample_relative(study, trial, relative_space)

        def answer(name: str, distribution: BaseDistribution) -> Any:
            if name in relative and relative_space.get(name) == distribution:
                return relative[name]
            return self.inner.sample_independent(study, trial, name, distribution)

        stand_in = _StandIn(answer)
        define_space(stand_in, self.space)
        return stand_in

    def _rejection(self, plan: SharingPlan, taken: dict[str, str]) -> str | None:
        if not plan.is_shared:
            return "plain"
        if plan.text in taken:
            return taken[plan.text]
        if not self._affordable(plan):
            return OVER_BUDGET
        return None

    def _affordable(self, plan: SharingPlan) -> bool:
        return self.max_params is None or plan.num_parameters(*self.shape[:2]) <= self.max_params

    def _taken(self, study: optuna.Study, number: int | None = None) -> dict[str, str]:
        """Plan text -> why it may not be proposed again (:func:`nas.trial.taken`, the rule a
        trial of it is skipped by), for trial ``number`` (None: the next one)."""
        return {plan: why for plan, (why, _) in taken(study, number=number).items()}

    def _unseen_random(self, taken: dict[str, str]) -> SharingPlan:
        plans = self._all_plans()
        if plans is not None:
            left = [p for p in plans if p.text not in taken and self._affordable(p)]
            if not left:
                raise SpaceExhausted(
                    f"all {len(plans)} architectures of the space are trained, running or over "
                    f"the budget"
                )
            return self._rng.choice(left)
        for _ in range(RANDOM_DRAWS):
            plan = random_plan(self.space, self._rng)
            if plan.text not in taken and self._affordable(plan):
                return plan
        raise SpaceExhausted(
            f"{RANDOM_DRAWS} random draws found no architecture that is new and within the budget"
        )

    def _all_plans(self) -> list[SharingPlan] | None:
        if self._listed is False:
            self._listed = all_plans(self.space)
        return self._listed  # type: ignore[return-value]

    def _record_over_budget(
        self, study: optuna.Study, plan: SharingPlan, stand_in: _StandIn
    ) -> None:
        classes, channels, side = (*self.shape, 32)[:3]
        attrs = trial_attrs(plan, (classes, channels, side))
        params = attrs["params"]
        attrs |= {
            "status": OVER_BUDGET,
            "reason": f"{params:,} parameters > max_params {self.max_params:,}; not trained",
        }
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED,
                params=stand_in.params,
                distributions=stand_in.distributions,
                user_attrs=attrs,
                constraints={"max_params": float(params - self.max_params)},
            )
        )
        log.info(
            "proposal %s is over the budget (%s parameters); recorded for the sampler, not trained",
            plan.text,
            f"{params:,}",
        )


def _info(source: str, draws: int, rejected: Counter) -> dict:
    """What the trial records of its proposal: who found it, after how many draws, what was turned down."""
    return {"source": source, "draws": draws, "rejected": dict(rejected)}
