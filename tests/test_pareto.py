"""Pareto maths on hand-made points whose answers were worked out by hand (in the comments)."""

import math

import pytest

from nas.pareto import (
    crowding_distance,
    dominates,
    hypervolume_2d,
    knee_point,
    non_dominated_sort,
    pareto_front,
)

MAX_MIN = ("maximize", "minimize")  # (accuracy, params)

# (accuracy, params). Fronts worked out by hand:
#   front 0: 0, 1, 2, 5 (a copy of 1), 7 (smallest model)
#   front 1: 3 (dominated only by 0), 4 (dominated by 1, 2, 5)
#   front 2: 6 (dominated by 4 among others)
EIGHT = [
    (0.90, 10.0),
    (0.80, 5.0),
    (0.70, 2.0),
    (0.85, 12.0),
    (0.60, 6.0),
    (0.80, 5.0),
    (0.50, 8.0),
    (0.50, 1.0),
]


# --- dominates ---------------------------------------------------------------------------------


def test_dominates_follows_directions():
    assert dominates((0.9, 5), (0.8, 6), MAX_MIN)
    assert dominates((0.9, 6), (0.8, 6), MAX_MIN)  # equal in one, better in the other
    assert not dominates((0.8, 6), (0.9, 5), MAX_MIN)
    assert not dominates((0.9, 7), (0.8, 6), MAX_MIN)  # a trade-off: neither dominates
    assert not dominates((0.8, 6), (0.9, 7), MAX_MIN)
    assert dominates((0.8, 6), (0.9, 7), ("minimize", "minimize"))
    assert dominates((1, 2, 3), (1, 2, 2), ("minimize", "minimize", "maximize"))


def test_equal_points_do_not_dominate_each_other():
    assert not dominates((0.8, 5), (0.8, 5), MAX_MIN)


# --- non_dominated_sort and pareto_front -------------------------------------------------------


def test_fronts_of_eight_hand_made_points():
    assert non_dominated_sort(EIGHT, MAX_MIN) == [[0, 1, 2, 5, 7], [3, 4], [6]]


def test_fronts_when_both_objectives_are_minimised():
    # the same points with accuracy negated: an error rate to minimise
    flipped = [(-a, p) for a, p in EIGHT]
    assert non_dominated_sort(flipped, ("minimize", "minimize")) == [[0, 1, 2, 5, 7], [3, 4], [6]]


def test_fronts_in_three_objectives():
    points = [(1, 1, 1), (0, 2, 2), (2, 0, 2), (2, 2, 2), (3, 3, 3)]
    assert non_dominated_sort(points, ["minimize"] * 3) == [[0, 1, 2], [3], [4]]


def test_a_set_of_identical_points_is_one_front():
    assert non_dominated_sort([(0.5, 3)] * 4, MAX_MIN) == [[0, 1, 2, 3]]


def test_empty_points_give_no_fronts():
    assert non_dominated_sort([], MAX_MIN) == []
    assert pareto_front([], MAX_MIN) == []


def test_pareto_front_is_ordered_by_params_ascending():
    # 7 (0.5, 1), 2 (0.7, 2), 1 and 5 (0.8, 5), 0 (0.9, 10); copies by index
    assert pareto_front(EIGHT, MAX_MIN) == [7, 2, 1, 5, 0]


# --- crowding_distance -------------------------------------------------------------------------

# A 4-point front (accuracy range 0.4, params range 9):
#   (0.8, 6): |0.9 - 0.7| / 0.4 + |10 - 4| / 9 = 0.5 + 2/3
#   (0.7, 4): |0.8 - 0.5| / 0.4 + |6 - 1| / 9 = 0.75 + 5/9
#   the two ends: inf
FOUR = [(0.9, 10.0), (0.8, 6.0), (0.7, 4.0), (0.5, 1.0)]


def test_crowding_distance_of_a_four_point_front_by_hand():
    distances = crowding_distance(FOUR, [0, 1, 2, 3], MAX_MIN)
    assert distances[0] == math.inf and distances[3] == math.inf
    assert distances[1] == pytest.approx(0.5 + 2 / 3)
    assert distances[2] == pytest.approx(0.75 + 5 / 9)


def test_crowding_distance_follows_the_order_of_front_and_ignores_directions():
    forward = crowding_distance(FOUR, [0, 1, 2, 3], MAX_MIN)
    backward = crowding_distance(FOUR, [3, 2, 1, 0], ("minimize", "maximize"))
    assert backward == forward[::-1]


@pytest.mark.parametrize("front", [[0], [1, 3], [2, 0]])
def test_fronts_of_one_or_two_points_are_infinitely_spread(front):
    assert crowding_distance(FOUR, front, MAX_MIN) == [math.inf] * len(front)


def test_identical_points_share_one_crowding_distance():
    points = FOUR + [(0.8, 6.0)]  # a copy of point 1
    distances = crowding_distance(points, [0, 1, 2, 3, 4], MAX_MIN)
    assert distances[4] == distances[1] == pytest.approx(0.5 + 2 / 3)
    assert crowding_distance(points, [4, 1, 0], MAX_MIN) == [math.inf] * 3  # two distinct points


def test_crowding_distance_of_an_empty_front():
    assert crowding_distance(FOUR, [], MAX_MIN) == []


@pytest.mark.parametrize("front", [[4], [-1], [0, 0], [0.0], [True], "01"])
def test_crowding_distance_rejects_bad_front(front):
    with pytest.raises(ValueError, match="front must hold distinct point indices in \\[0, 4\\)"):
        crowding_distance(FOUR, front, MAX_MIN)


# --- hypervolume_2d ----------------------------------------------------------------------------


# reference (0.0, 8.0); in (accuracy: max, params: min)
#   (0.9, 6): 0.9 * (8 - 6) = 1.8
#   (0.8, 5): 0.8 * (8 - 5) = 2.4
#   both: 1.8 + 2.4 - overlap 0.8 * 2 = 2.6
#   with (0.5, 2) too: 2.6 + 0.5 * (5 - 2) = 4.1
@pytest.mark.parametrize(
    "points,area",
    [
        ([(0.9, 6.0)], 1.8),
        ([(0.8, 5.0)], 2.4),
        ([(0.9, 6.0), (0.8, 5.0)], 2.6),
        ([(0.5, 2.0), (0.9, 6.0), (0.8, 5.0)], 4.1),
    ],
)
def test_hypervolume_by_hand(points, area):
    assert hypervolume_2d(points, (0.0, 8.0), MAX_MIN) == pytest.approx(area)
    # the same problem with both directions flipped (and the values negated) has the same area
    mirrored = [(-a, -p) for a, p in points]
    assert hypervolume_2d(mirrored, (0.0, -8.0), ("minimize", "maximize")) == pytest.approx(area)


def test_hypervolume_ignores_order_duplicates_and_dominated_points():
    base = hypervolume_2d([(0.9, 6.0), (0.8, 5.0)], (0.0, 8.0), MAX_MIN)
    noisy = [(0.8, 5.0), (0.7, 7.0), (0.9, 6.0), (0.8, 5.0), (0.85, 6.5)]
    assert hypervolume_2d(noisy, (0.0, 8.0), MAX_MIN) == pytest.approx(base)


def test_points_not_strictly_better_than_the_reference_add_nothing():
    ref = (0.0, 8.0)
    outside = [(0.9, 9.0), (-0.1, 1.0), (0.9, 8.0), (0.0, 1.0), (-1.0, 20.0)]
    assert hypervolume_2d(outside, ref, MAX_MIN) == 0.0
    assert hypervolume_2d(outside + [(0.9, 6.0)], ref, MAX_MIN) == pytest.approx(1.8)
    assert hypervolume_2d([], ref, MAX_MIN) == 0.0


def test_hypervolume_is_two_dimensional_only():
    with pytest.raises(ValueError, match="directions must have exactly 2 entries"):
        hypervolume_2d([(1, 2, 3)], (0, 0, 0), ["minimize"] * 3)
    with pytest.raises(ValueError, match="reference must be a sequence of 2 finite numbers"):
        hypervolume_2d([(0.9, 6.0)], (0.0,), MAX_MIN)


# --- knee_point --------------------------------------------------------------------------------

# An L-shaped front. Normalised over the front (1 = best):
#   accuracy (a - 0.5) / 0.4:  0,  0.95,  0.975, 1
#   params   (10 - p) / 9:     1,  0.889, 0.556, 0
#   sums:                      1,  1.839, 1.531, 1   -> the knee is (0.88, 2)
L_SHAPE = [(0.50, 1.0), (0.88, 2.0), (0.89, 5.0), (0.90, 10.0)]


def test_knee_of_an_l_shaped_front():
    assert knee_point(L_SHAPE, MAX_MIN) == 1


def test_knee_ignores_dominated_points_and_order():
    points = [(0.40, 9.0), L_SHAPE[3], L_SHAPE[1], (0.87, 3.0), L_SHAPE[0], L_SHAPE[2]]
    assert knee_point(points, MAX_MIN) == 2


def test_knee_of_one_point_is_that_point():
    assert knee_point([(0.7, 3.0)], MAX_MIN) == 0
    assert knee_point(L_SHAPE, MAX_MIN, front=[2]) == 2


def test_knee_of_two_points_is_the_better_first_objective():
    assert knee_point([(0.5, 1.0), (0.9, 10.0)], MAX_MIN) == 1
    assert knee_point([(0.9, 10.0), (0.5, 1.0)], MAX_MIN) == 0


def test_knee_on_a_given_subset():
    # without (0.88, 2) the next best sum is (0.89, 5): 0.975 + 0.556 -> still inside
    assert knee_point(L_SHAPE, MAX_MIN, front=[0, 2, 3]) == 2


def test_knee_when_one_point_is_best_in_both():
    assert knee_point(L_SHAPE + [(0.95, 0.5)], MAX_MIN, front=[0, 1, 4]) == 4


def test_knee_needs_points_and_two_objectives():
    with pytest.raises(ValueError, match="points must hold at least one point"):
        knee_point([], MAX_MIN)
    with pytest.raises(ValueError, match="front must hold at least one point index"):
        knee_point(L_SHAPE, MAX_MIN, front=[])
    with pytest.raises(ValueError, match="directions must have exactly 2 entries"):
        knee_point([(1, 2, 3)], ["minimize"] * 3)


# --- argument errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "directions", ["maximize", [], ["maximise", "minimize"], ["MAXIMIZE", "minimize"], None]
)
def test_invalid_directions_are_rejected(directions):
    with pytest.raises(ValueError, match="directions must be a"):
        non_dominated_sort(EIGHT, directions)


@pytest.mark.parametrize(
    "points,bad",
    [
        ([(0.5, 1.0), (0.5,)], "points\\[1\\]"),
        ([(0.5, 1.0, 2.0)], "points\\[0\\]"),
        ([(float("nan"), 1.0)], "points\\[0\\]"),
        ([(0.5, float("inf"))], "points\\[0\\]"),
        ([(True, 1.0)], "points\\[0\\]"),
        (["ab"], "points\\[0\\]"),
    ],
)
def test_invalid_points_are_rejected(points, bad):
    with pytest.raises(ValueError, match=f"{bad} must be a sequence of 2 finite numbers"):
        pareto_front(points, MAX_MIN)


def test_dominates_checks_point_lengths():
    with pytest.raises(ValueError, match="b must be a sequence of 2 finite numbers"):
        dominates((1, 2), (1,), MAX_MIN)
