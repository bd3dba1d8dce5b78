"""Sharing plans read from a trained network's kernels, found exactly for each parameter budget.

    for p in learned_plans(trained_wrn, [150_000, 200_000]):
        print(p.budget, p.plan.text, p.params, p.error)

Design: docs/design.md#softsharelearned
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .inherit import _kernel, _shareable
from .models import SWRN
from .plan import SharingPlan, stage_widths
from .validate import is_int

__all__ = ["ERRORS", "GroupError", "LearnedPlan", "group_errors", "group_keys", "learned_plans"]

# What a plan's error adds up over its groups: the squared Frobenius error of the fits, or each
# group's relative error ||M - fit|| / ||M||.
ERRORS = ("squared", "relative")


@dataclass(frozen=True)
class GroupError:
    """How well one candidate group of a trained parent fits a bank of ``templates``.

    ``stage`` 1-3; ``start``, ``stop``: the group's shareable convs in the stage (stop exclusive);
    ``squared``: the squared Frobenius error of the best rank-T fit; ``relative``: its error over
    the kernels' norm (0 when T >= the group's layers)."""

    stage: int
    start: int
    stop: int
    templates: int
    squared: float
    relative: float

    @property
    def layers(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class LearnedPlan:
    """The plan of least projection error within ``budget`` parameters.

    ``error`` is in the metric asked for; ``squared`` and ``relative`` give the plan's error in
    both (sums over its shared groups)."""

    budget: int
    plan: SharingPlan
    params: int
    error: float
    squared: float
    relative: float


TemplateChoices = Callable[[int], Sequence[int]]


def _default_choices(layers: int) -> list[int]:
    """Unshared (0), or a bank of 1..layers templates."""
    return [0, *range(1, layers + 1)]


@torch.no_grad()
def group_errors(parent: nn.Module, templates: TemplateChoices | None = None) -> list[GroupError]:
    """The projection error of every contiguous group of every stage of ``parent`` (a trained
    :class:`SWRN`, plain or shared: a shared one's mixed kernels are read) at every bank size
    ``templates(layers)`` allows (0 there means unshared and is skipped; default 1..layers).

    ValueError (one line) for a parent that is not an SWRN."""
    if not isinstance(parent, SWRN):
        raise ValueError(f"parent must be a softshare SWRN, but got {type(parent).__name__}.")
    choices = templates or _default_choices
    rows = []
    for stage, convs in enumerate(_shareable(parent), 1):
        if not convs:
            continue
        kernels = torch.stack([_kernel(conv).reshape(-1) for conv in convs])
        gram = kernels @ kernels.T  # float64, L x L
        for start in range(len(convs)):
            for stop in range(start + 1, len(convs) + 1):
                block = gram[start:stop, start:stop]
                # squared singular values, largest first (clamped: eigvalsh may give -1e-18)
                energy = torch.linalg.eigvalsh(block).flip(0).clamp_min(0.0).tolist()
                total = sum(energy)
                for t in choices(stop - start):
                    if t <= 0:
                        continue
                    lost = sum(energy[t:])
                    rows.append(
                        GroupError(
                            stage,
                            start,
                            stop,
                            int(t),
                            lost,
                            math.sqrt(lost / total) if total > 0 else 0.0,
                        )
                    )
    return rows


# A Pareto point: (params, error, groups or stages chosen, shared anywhere)
_Point = tuple[int, float, tuple, bool]


def _pareto(points: Iterable[_Point]) -> list[_Point]:
    """Per value of the shared flag, the points no other point beats on both params and error
    (ties: the first seen is kept, so the result does not depend on float noise in ordering)."""
    points = list(points)
    kept: list[_Point] = []
    for flag in (False, True):
        best = math.inf
        for point in sorted((p for p in points if p[3] is flag), key=lambda p: (p[0], p[1])):
            if point[1] < best:
                kept.append(point)
                best = point[1]
    return kept


def _stage_front(
    layers: int,
    channels: int,
    errors: dict[tuple[int, int, int], float],
    choices: TemplateChoices,
    cuts: bool,
) -> list[_Point]:
    """Pareto set over the ways to cut one stage of ``layers`` convs into groups."""
    kernel = channels * channels * 9

    def group_options(start: int, stop: int) -> list[tuple[int, float, tuple, bool]]:
        n = stop - start
        out = []
        for t in choices(n):
            if t <= 0:
                out.append((n * kernel, 0.0, ((n, None),), False))
            else:
                out.append((t * kernel + n * t, errors[start, stop, t], ((n, t),), True))
        return out

    if layers == 0:
        return [(0, 0.0, (), False)]
    if not cuts:
        return _pareto(group_options(0, layers))
    fronts: list[list[_Point]] = [[(0, 0.0, (), False)]]  # fronts[i]: ways to cut layers [0, i)
    for stop in range(1, layers + 1):
        candidates = []
        for start in range(stop):
            for prefix in fronts[start]:
                for option in group_options(start, stop):
                    candidates.append(
                        (
                            prefix[0] + option[0],
                            prefix[1] + option[1],
                            prefix[2] + option[2],
                            prefix[3] or option[3],
                        )
                    )
        fronts.append(_pareto(candidates))
    return fronts[layers]


def learned_plans(
    parent: nn.Module,
    budgets: Iterable[int],
    *,
    templates: TemplateChoices | None = None,
    cuts: bool = True,
    error: str = "relative",
) -> list[LearnedPlan | None]:
    """For each of ``budgets`` (parameter counts of the whole model), the shared plan of the
    parent's depth and width with the least projection error that fits it, or None where no
    shared plan does.

    ``parent``: a trained :class:`SWRN` (a plain WRN-d-k, or a shared one, whose mixed kernels
    are then read). ``templates(layers)``: the bank sizes a group of that many layers may take,
    0 meaning unshared (default: unshared or 1..layers); pass a search space's
    ``template_choices``, and ``cuts=False`` where the space keeps one group per stage.
    ``error``: ``"relative"`` (the sum of the groups' relative errors) or ``"squared"`` (their
    total squared error). A plan with nothing shared is never returned: it is the plain net.
    Exact (docs/design.md#softsharelearned). ValueError (one line) for a parent that is not an SWRN,
    an unknown metric or a budget that is not a positive integer.
    """
    if error not in ERRORS:
        raise ValueError(f"error must be one of {', '.join(ERRORS)}, but got error={error!r}.")
    budgets = list(budgets)
    for budget in budgets:
        if not is_int(budget) or budget < 1:
            raise ValueError(f"a budget is a parameter count >= 1, but got {budget!r}.")
    choices = templates or _default_choices
    table = {(g.stage, g.start, g.stop, g.templates): g for g in group_errors(parent, choices)}
    mine = parent.config.sharing_plan
    layers = mine.shareable_per_stage
    plain = SharingPlan(
        mine.depth, mine.width, tuple(((layers, None),) if layers else () for _ in range(3))
    )
    # what every plan has: the plain net less its shareable convs' kernels (the stages add theirs)
    fixed = plain.num_parameters(parent.config.num_classes, parent.config.in_channels) - sum(
        layers * c * c * 9 for c in stage_widths(mine.width)
    )
    combined: list[_Point] = [(fixed, 0.0, (), False)]
    for stage, channels in enumerate(stage_widths(mine.width), 1):
        errors = {
            (start, stop, t): getattr(g, error)
            for (s, start, stop, t), g in table.items()
            if s == stage
        }
        front = _stage_front(layers, channels, errors, choices, cuts)
        combined = _pareto(
            (a[0] + b[0], a[1] + b[1], a[2] + (b[2],), a[3] or b[3])
            for a in combined
            for b in front
        )
    shared = sorted((p for p in combined if p[3]), key=lambda p: (p[0], p[1]))
    out: list[LearnedPlan | None] = []
    for budget in budgets:
        fits = [p for p in shared if p[0] <= budget]
        if not fits:
            out.append(None)
            continue
        params, value, stages, _ = min(fits, key=lambda p: (p[1], p[0]))
        plan = SharingPlan(mine.depth, mine.width, stages)
        groups = [table[k] for k in group_keys(plan)]
        out.append(
            LearnedPlan(
                budget,
                plan,
                params,
                value,
                sum(g.squared for g in groups),
                sum(g.relative for g in groups),
            )
        )
    return out


def group_keys(plan: SharingPlan) -> list[tuple[int, int, int, int]]:
    """(stage, start, stop, templates) of each shared group of ``plan``: the keys of its rows in
    :func:`group_errors`, whose errors add up to the plan's."""
    keys = []
    for stage, groups in enumerate(plan.stages, 1):
        start = 0
        for n, t in groups:
            if t is not None:
                keys.append((stage, start, start + n, t))
            start += n
    return keys
