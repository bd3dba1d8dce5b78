"""Pareto maths for a search with several objectives (ours: accuracy up, parameters down).

Pure Python over points (one finite number per objective) and ``directions`` as in Optuna:
non-dominated sorting, crowding distance, 2-D hypervolume and the knee (NSGA-II, Kneedle).

Design: docs/design.md#naspareto
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from softshare.validate import is_int, is_number

__all__ = [
    "DIRECTIONS",
    "Direction",
    "crowding_distance",
    "dominates",
    "hypervolume_2d",
    "knee_point",
    "non_dominated_sort",
    "pareto_front",
]

Direction = Literal["maximize", "minimize"]
DIRECTIONS: tuple[str, ...] = ("maximize", "minimize")

_Vector = tuple[float, ...]


# --- argument checks --------------------------------------------------------------------------


def _checked_directions(directions: Sequence[str], count: int | None = None) -> tuple[str, ...]:
    """``directions`` as a tuple, or ValueError if it is not a sequence of known directions."""
    valid = (
        isinstance(directions, Sequence)
        and not isinstance(directions, str)
        and len(directions) > 0
        and all(d in DIRECTIONS for d in directions)
    )
    if not valid:
        raise ValueError(
            f"directions must be a non-empty sequence of 'maximize'/'minimize' "
            f"(one per objective), but got {directions=}."
        )
    if count is not None and len(directions) != count:
        raise ValueError(
            f"directions must have exactly {count} entries here, but got {directions=}."
        )
    return tuple(directions)


def _checked_vector(value: Sequence[float], name: str, size: int) -> _Vector:
    """``value`` as a tuple of floats, or ValueError unless it has ``size`` finite numbers."""
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) != size
        or not all(is_number(v) for v in value)
    ):
        raise ValueError(
            f"{name} must be a sequence of {size} finite numbers (one per direction), "
            f"but got {name}={value!r}."
        )
    return tuple(float(v) for v in value)


def _checked_points(points: Sequence[Sequence[float]], size: int) -> list[_Vector]:
    """Every point checked by :func:`_checked_vector`; ``points`` may be empty."""
    if isinstance(points, str) or not isinstance(points, Sequence):
        raise ValueError(f"points must be a sequence of points, but got {points=}.")
    return [_checked_vector(p, f"points[{i}]", size) for i, p in enumerate(points)]


def _checked_front(front: Sequence[int], count: int) -> list[int]:
    """``front`` as a list, or ValueError unless it holds distinct indices in [0, count)."""
    valid = (
        isinstance(front, Sequence)
        and not isinstance(front, str)
        and all(is_int(i) for i in front)
        and all(0 <= i < count for i in front)
        and len(set(front)) == len(front)
    )
    if not valid:
        raise ValueError(
            f"front must hold distinct point indices in [0, {count}), but got {front=}."
        )
    return [int(i) for i in front]


# --- helpers in minimisation space ------------------------------------------------------------


def _to_minimisation(point: _Vector, directions: tuple[str, ...]) -> _Vector:
    """The point with maximised objectives negated, so that smaller is better everywhere."""
    return tuple(-v if d == "maximize" else v for v, d in zip(point, directions))


def _dominates_when_minimising(a: _Vector, b: _Vector) -> bool:
    """``a`` is no worse than ``b`` in every objective and strictly better in at least one."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _domination_graph(costs: list[_Vector]) -> tuple[list[list[int]], list[int]]:
    """For each point: whom it dominates, and by how many points it is dominated."""
    dominated: list[list[int]] = [[] for _ in costs]
    dominator_count = [0] * len(costs)
    for i in range(len(costs)):
        for j in range(i + 1, len(costs)):
            if _dominates_when_minimising(costs[i], costs[j]):
                dominated[i].append(j)
                dominator_count[j] += 1
            elif _dominates_when_minimising(costs[j], costs[i]):
                dominated[j].append(i)
                dominator_count[i] += 1
    return dominated, dominator_count


# --- public API -------------------------------------------------------------------------------


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[Direction]) -> bool:
    """Whether point ``a`` Pareto-dominates point ``b``.

    ``a`` dominates ``b`` when it is at least as good in every objective and strictly better in
    at least one. Equal points do not dominate each other.
    """
    dirs = _checked_directions(directions)
    a_cost = _to_minimisation(_checked_vector(a, "a", len(dirs)), dirs)
    b_cost = _to_minimisation(_checked_vector(b, "b", len(dirs)), dirs)
    return _dominates_when_minimising(a_cost, b_cost)


def non_dominated_sort(
    points: Sequence[Sequence[float]], directions: Sequence[Direction]
) -> list[list[int]]:
    """Split point indices into Pareto fronts (NSGA-II fast non-dominated sort).

    Front 0 holds the points no other point dominates (the Pareto front); front ``k`` holds
    those dominated only by points of fronts ``< k``. Equal points never dominate each other,
    so duplicates always land in the same front. Indices inside a front are ascending. Every
    index appears exactly once; an empty ``points`` gives ``[]``. Cost: O(k n^2) for n points.
    """
    dirs = _checked_directions(directions)
    costs = [_to_minimisation(p, dirs) for p in _checked_points(points, len(dirs))]
    dominated, dominator_count = _domination_graph(costs)
    fronts: list[list[int]] = []
    current = [i for i, count in enumerate(dominator_count) if count == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominated[i]:
                dominator_count[j] -= 1
                if dominator_count[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[Direction]) -> list[int]:
    """Indices of the non-dominated points (front 0 of :func:`non_dominated_sort`).

    Order: ascending by the points' raw values, compared lexicographically (first objective,
    then the next, ...), then by index. On a two-objective front the second objective then
    runs monotonically too: for our (accuracy: maximize, parameters: minimize) this lists the
    front from the smallest, least accurate model to the largest, most accurate one, i.e. by
    parameters ascending, the left-to-right order of a params-vs-accuracy plot.
    Empty ``points`` give ``[]``.
    """
    dirs = _checked_directions(directions)
    checked = _checked_points(points, len(dirs))
    fronts = non_dominated_sort(checked, dirs)
    if not fronts:
        return []
    return sorted(fronts[0], key=lambda i: (checked[i], i))


def crowding_distance(
    points: Sequence[Sequence[float]], front: Sequence[int], directions: Sequence[Direction]
) -> list[float]:
    """NSGA-II crowding distance of each point of ``front``, in the order of ``front``.

    For each objective the front is sorted by it; the two extreme points get ``inf`` and every
    other point adds (next - previous) / (max - min) of that objective, so each term lies in
    [0, 1] and a distance lies in [0, k] or is ``inf``. Larger means more isolated.
    Choices where NSGA-II is silent, so that the result depends only on the set of values and
    never on the order of ``front``:

    * equal points share one value, computed as if a single copy were present;
    * a front with at most two distinct points gives ``inf`` to every point;
    * an objective in which all points of the front are equal adds nothing (no ``inf`` either).

    ``front`` holds distinct indices into ``points`` (usually one list from
    :func:`non_dominated_sort`, but any subset is accepted); an empty front gives ``[]``.
    ``directions`` only fixes the number of objectives: distances do not depend on them.
    """
    dirs = _checked_directions(directions)
    checked = _checked_points(points, len(dirs))
    members = _checked_front(front, len(checked))
    distinct = sorted({checked[i] for i in members})
    if len(distinct) <= 2:
        return [math.inf] * len(members)
    distance = dict.fromkeys(distinct, 0.0)
    for m in range(len(dirs)):
        ordered = sorted(distinct, key=lambda p: p[m])  # stable: ties keep lexicographic order
        span = ordered[-1][m] - ordered[0][m]
        if span == 0.0:
            continue
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        for previous, point, following in zip(ordered, ordered[1:], ordered[2:]):
            distance[point] += (following[m] - previous[m]) / span
    return [distance[checked[i]] for i in members]


def hypervolume_2d(
    points: Sequence[Sequence[float]],
    reference: Sequence[float],
    directions: Sequence[Direction],
) -> float:
    """Area of the objective space dominated by ``points`` and bounded by ``reference``.

    The union of the rectangles spanned between each point and the reference point, in the
    units of the two objectives as given: the caller picks the space (for us accuracy in [0, 1]
    and log10 of the parameter count, so that halving the model is worth the same anywhere).
    Only points strictly better than ``reference`` in both objectives add area; the others
    (worse in either objective, or equal in one) add nothing. Range: [0, inf); empty or fully
    dominated inputs give 0.0. Cost: O(n log n).
    """
    dirs = _checked_directions(directions, count=2)
    ref = _to_minimisation(_checked_vector(reference, "reference", 2), dirs)
    costs = [_to_minimisation(p, dirs) for p in _checked_points(points, 2)]
    inside = sorted(c for c in costs if c[0] < ref[0] and c[1] < ref[1])
    area, ceiling = 0.0, ref[1]
    for x, y in inside:  # sweep along objective 0; each step adds the new strip below ceiling
        if y < ceiling:
            area += (ref[0] - x) * (ceiling - y)
            ceiling = y
    return area


def _normalised_goodness(costs: list[_Vector]) -> list[tuple[float, float]]:
    """Each cost mapped to [0, 1] per objective over ``costs``: 1 = best, 0 = worst.

    An objective in which all costs are equal maps to 1 for everyone.
    """
    scaled = []
    for m in range(2):
        best, worst = min(c[m] for c in costs), max(c[m] for c in costs)
        span = worst - best
        scaled.append([1.0 if span == 0.0 else (worst - c[m]) / span for c in costs])
    return list(zip(scaled[0], scaled[1]))


def _distance_from_chord(goodness: list[tuple[float, float]]) -> list[float]:
    """Signed distance of each point from the line through the two extreme points.

    Extremes: the best point in objective 0 (ties: best in objective 1), and the best in
    objective 1 (ties: best in objective 0). Positive on the side of the ideal point (1, 1).
    Zero for everyone when both extremes coincide (one point is best in both).
    """
    a = max(goodness, key=lambda g: (g[0], g[1]))
    b = max(goodness, key=lambda g: (g[1], g[0]))
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy)
    if length == 0.0:
        return [0.0] * len(goodness)
    sign = 1.0 if dx * (1.0 - a[1]) - dy * (1.0 - a[0]) > 0 else -1.0
    return [sign * (dx * (g[1] - a[1]) - dy * (g[0] - a[0])) / length for g in goodness]


def knee_point(
    points: Sequence[Sequence[float]],
    directions: Sequence[Direction],
    front: Sequence[int] | None = None,
) -> int:
    """Index of the best trade-off point of a two-objective front (its "knee").

    Method (Kneedle-style, Satopaa et al. 2011, applied to a Pareto front): normalise each
    objective min-max to [0, 1] over the front, with 1 the best value; draw the straight line
    through the two extreme points (best in objective 0, best in objective 1); the knee is the
    front point farthest from that line on the side of the ideal point (1, 1). On a front of
    mutually non-dominated points the extremes sit at (1, 0) and (0, 1), so this is the point
    with the largest sum of normalised objectives. Ties (always the case for a two-point front,
    whose points both lie on the line) go to the larger normalised sum, then to the better
    first objective (for us: the more accurate model), then to the smaller index.
    A one-point front gives that point.

    ``front`` defaults to :func:`pareto_front` of ``points``; pass a list of distinct indices to
    look at another subset. Raises ValueError on empty ``points`` or ``front``.
    """
    dirs = _checked_directions(directions, count=2)
    checked = _checked_points(points, 2)
    if not checked:
        raise ValueError(f"points must hold at least one point, but got {points=}.")
    members = pareto_front(checked, dirs) if front is None else _checked_front(front, len(checked))
    if not members:
        raise ValueError(f"front must hold at least one point index, but got {front=}.")
    goodness = _normalised_goodness([_to_minimisation(checked[i], dirs) for i in members])
    distance = _distance_from_chord(goodness)
    best = max(
        range(len(members)),
        key=lambda k: (distance[k], goodness[k][0] + goodness[k][1], goodness[k][0], -members[k]),
    )
    return members[best]
