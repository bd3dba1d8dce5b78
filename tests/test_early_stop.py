"""Pareto-aware early stopping on hand-made studies whose outcome was worked out by hand."""

import dataclasses
import itertools
import json
import math
import random

import pytest

from nas.early_stop import Decision, StopRule, decide, rank_at_rung
from nas.pareto import crowding_distance


def _trial(accuracy_at_end: float, params: int, epochs: int = 3) -> tuple[list[float], int]:
    """A (curve, params) pair whose accuracy rises to ``accuracy_at_end`` at the last epoch."""
    return [accuracy_at_end - 0.01 * (epochs - e) for e in range(1, epochs + 1)], params


def _accuracy_rank(candidate: float, others: list[float]) -> int:
    """Rank (1 = best) of ``candidate`` by accuracy alone, as a one-metric scheduler sees it."""
    return 1 + sum(a > candidate for a in others)


# Eight other trials at rung 3, as (accuracy at epoch 3, params). Front 0 of them:
# (0.95, 9000), (0.90, 1000), (0.40, 500); the rest form a chain (0.85, 2000) > (0.80, 3000) >
# (0.70, 4000) > (0.60, 4500) > (0.55, 4800), one front each.
EIGHT_OTHERS = [
    _trial(0.90, 1000),
    _trial(0.85, 2000),
    _trial(0.80, 3000),
    _trial(0.70, 4000),
    _trial(0.60, 4500),
    _trial(0.55, 4800),
    _trial(0.95, 9000),
    _trial(0.40, 500),
]
RULE = StopRule(max_epochs=30, min_epochs=1)  # rungs 1, 3, 9, 27; eta 3; min_trials 3


# --- StopRule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields,rungs",
    [
        (dict(max_epochs=30, min_epochs=1), (1, 3, 9, 27)),
        (dict(max_epochs=27, min_epochs=1), (1, 3, 9)),  # strictly below the budget
        (dict(max_epochs=28, min_epochs=1), (1, 3, 9, 27)),
        (
            dict(max_epochs=12),
            (3, 9),
        ),  # the default first rung follows the budget: a quarter of it
        (dict(max_epochs=30), (7, 21)),
        (dict(max_epochs=3), (2,)),
        (dict(max_epochs=8), (2, 6)),
        (dict(max_epochs=2), (1,)),
        (dict(max_epochs=16, min_epochs=2, eta=2), (2, 4, 8)),
        (dict(max_epochs=100, min_epochs=5, eta=4), (5, 20, 80)),
        (dict(max_epochs=1), ()),
        (dict(max_epochs=5, min_epochs=5), ()),
    ],
)
def test_rungs(fields, rungs):
    assert StopRule(**fields).rungs == rungs


def test_defaults_and_min_trials_follow_eta():
    rule = StopRule(max_epochs=10, min_epochs=1)
    assert (rule.min_epochs, rule.eta, rule.min_trials, rule.patience) == (1, 3, 3, None)
    assert (rule.min_delta, rule.enabled) == (0.0, True)
    assert StopRule(max_epochs=10, min_epochs=1, eta=4).min_trials == 4
    assert StopRule(max_epochs=10, min_epochs=1, eta=4, min_trials=2).min_trials == 2


def test_rule_round_trips_through_json():
    rule = StopRule(
        max_epochs=200, min_epochs=2, eta=4, min_trials=5, patience=10, min_delta=0.001
    )
    assert StopRule(**json.loads(json.dumps(dataclasses.asdict(rule)))) == rule


def test_rule_stores_plain_json_numbers():
    np = pytest.importorskip("numpy")
    rule = StopRule(
        max_epochs=np.int64(30), min_epochs=1, eta=np.int32(3), min_delta=0, patience=np.int64(2)
    )
    assert json.loads(json.dumps(dataclasses.asdict(rule))) == dataclasses.asdict(rule)
    assert type(rule.max_epochs) is int and type(rule.min_trials) is int
    assert type(rule.min_delta) is float


@pytest.mark.parametrize(
    "field,valid,invalid",
    [
        ("max_epochs", [1, 1000], [0, -1, 2.0, True, None]),
        ("min_epochs", [1, 50], [0, -3, 1.0, True]),
        ("eta", [2, 10], [1, 0, 2.0, True]),
        ("min_trials", [1, 100, None], [0, -1, 1.5, True]),
        ("patience", [None, 1, 20], [0, -1, 2.0, True]),
        ("min_delta", [0.0, 0, 1e-12, 0.5], [-1e-12, -1, math.nan, math.inf, True, "0"]),
        ("enabled", [True, False], [1, 0, "yes", None]),
    ],
)
def test_each_field_is_validated_at_its_edges(field, valid, invalid):
    for value in valid:
        StopRule(**{"max_epochs": 10, field: value})
    for value in invalid:
        with pytest.raises(ValueError, match=f"{field} must be .* but got {field}={value!r}"):
            StopRule(**{"max_epochs": 10, field: value})


def test_error_message_names_the_range():
    with pytest.raises(ValueError, match=r"^eta must be an integer >= 2, but got eta=1\.$"):
        StopRule(max_epochs=10, min_epochs=1, eta=1)


# --- rung rule ---------------------------------------------------------------------------------


def test_candidate_dominated_by_many_is_stopped():
    # (0.50, 5000) is dominated by all of the chain, down to (0.55, 4800): front 6, last of 9
    decision = decide(*_trial(0.50, 5000), EIGHT_OTHERS, RULE)
    assert decision == Decision(stop=True, reason="rung 3: rank 9 of 9, keeps top 3")


def test_smallest_model_survives_despite_lowest_accuracy():
    curve, params = _trial(0.30, 100)
    others = EIGHT_OTHERS[:-1] + [_trial(0.50, 5000)]
    # a one-metric scheduler would rank it last of 9 and stop it (keeps top 3) ...
    assert _accuracy_rank(0.30, [c[-1] for c, _ in others]) == 9
    # ... but it is an end of the Pareto front (inf crowding), second only to (0.95, 9000)
    assert decide(curve, params, others, RULE) == Decision(stop=False, reason="")
    points = [(0.30, 100)] + [(c[2], p) for c, p in others]
    assert rank_at_rung(points).index(0) == 1
    # the same accuracy with 1100 params is dominated by (0.90, 1000) and goes
    assert decide(curve, 1100, others, RULE).stop


def test_fewer_trials_than_min_trials_continue():
    weak, strong = _trial(0.30, 9000), _trial(0.90, 100)
    assert decide(*weak, [strong], RULE) == Decision(False, "")  # n = 2 < 3
    two = StopRule(max_epochs=30, min_epochs=1, min_trials=2)
    assert decide(*weak, [strong], two) == Decision(True, "rung 3: rank 2 of 2, keeps top 1")
    alone = StopRule(max_epochs=30, min_epochs=1, min_trials=1)
    assert decide(*weak, [], alone) == Decision(False, "")  # n = 1, keeps 1


@pytest.mark.parametrize(
    "n,eta,rank,decision",
    [
        (4, 3, 2, Decision(True, "rung 3: rank 2 of 4, keeps top 1")),  # floor(4 / 3) = 1
        (5, 2, 2, Decision(False, "")),  # floor(5 / 2) = 2
        (5, 2, 3, Decision(True, "rung 2: rank 3 of 5, keeps top 2")),
        (6, 2, 3, Decision(False, "")),
    ],
)
def test_a_rung_keeps_the_floor_of_n_over_eta(n, eta, rank, decision):
    # a chain, judged at the second rung (epoch eta): trial i has accuracy 0.9 - 0.1 i and
    # 1000 (1 + i) params, so each dominates the next and trial i ranks i + 1
    chain = [_trial(0.9 - 0.1 * i, 1000 * (1 + i), epochs=eta) for i in range(n)]
    others = chain[: rank - 1] + chain[rank:]
    rule = StopRule(max_epochs=30, min_epochs=1, eta=eta, min_trials=1)
    assert decide(*chain[rank - 1], others, rule) == decision


@pytest.mark.parametrize("epochs", [2, 4, 8, 10, 26, 28, 30])
def test_epochs_off_the_rungs_continue(epochs):
    others = [_trial(curve[-1], params, epochs=30) for curve, params in EIGHT_OTHERS]
    assert decide(*_trial(0.10, 5000, epochs), others, RULE) == Decision(False, "")
    assert decide(*_trial(0.10, 5000, 9), others, RULE).stop  # rung 9 does judge it


def test_trials_short_of_the_rung_are_ignored():
    reached = [_trial(0.40, 6000), _trial(0.45, 7000)]
    short = [_trial(0.99, 10, epochs=2) for _ in range(6)]
    assert decide(*_trial(0.50, 5000), reached + short, RULE) == Decision(False, "")
    losing = decide(*_trial(0.30, 9000), short + reached, RULE)
    # the two that reached the rung form the first front: both its ends continue, so top 2
    assert losing == Decision(True, "rung 3: rank 3 of 3, keeps top 2")


def test_both_ends_of_the_first_front_continue_when_n_over_eta_is_one():
    # 4 trials at rung 3, eta 3: floor(4 / 3) = 1, but the front (0.9, 9000) - (0.6, 1000) has two
    # ends; keeping one would always stop the cheapest model and lose the small end of the frontier
    accurate, cheap, middle, dominated = (
        _trial(0.9, 9000),
        _trial(0.6, 1000),
        _trial(0.8, 5000),
        _trial(0.5, 6000),
    )
    assert rank_at_rung([(0.6, 1000), (0.9, 9000), (0.8, 5000), (0.5, 6000)])[:2] == [1, 0]
    assert decide(*cheap, [accurate, middle, dominated], RULE) == Decision(False, "")
    assert decide(*accurate, [cheap, middle, dominated], RULE) == Decision(False, "")
    # the middle of the front and the dominated trial still go: the rule keeps ends, not fronts
    assert decide(*middle, [accurate, cheap, dominated], RULE) == Decision(
        True, "rung 3: rank 3 of 4, keeps top 2"
    )
    assert decide(*dominated, [accurate, cheap, middle], RULE) == Decision(
        True, "rung 3: rank 4 of 4, keeps top 2"
    )
    # a first front of one point has one end: keep 1
    chain = [_trial(0.9, 1000), _trial(0.8, 2000), _trial(0.7, 3000)]
    assert decide(*chain[1], [chain[0], chain[2]], RULE) == Decision(
        True, "rung 3: rank 2 of 3, keeps top 1"
    )


def test_others_are_judged_at_the_rung_not_at_their_last_epoch():
    # a late bloomer: 0.2 at epoch 3 (no threat then), 0.99 later with fewer params
    bloomer = ([0.1, 0.15, 0.2, 0.9, 0.99], 4000)
    others = [bloomer, _trial(0.40, 7000)]
    assert decide(*_trial(0.50, 5000), others, RULE) == Decision(False, "")
    # had it been judged on 0.99 it would dominate the candidate, which would then stop
    assert decide(*_trial(0.50, 5000), [_trial(0.99, 4000), others[1]], RULE).stop


# Six trials at rung 2 (eta 2, so the top 3 continue), as (accuracy, params):
#   front 0: P0 (0.50, 1000), P1 (0.70, 3000), P2 (0.86, 7000), P3 (0.88, 8000), P4 (0.90, 9000)
#   front 1: P5 (0.40, 5000), dominated by P1
# Crowding on front 0 (accuracy range 0.4, params range 8000):
#   P1: (0.86 - 0.50) / 0.4 + (7000 - 1000) / 8000 = 0.9 + 0.75 = 1.65
#   P2: (0.88 - 0.70) / 0.4 + (8000 - 3000) / 8000 = 0.45 + 0.625 = 1.075
#   P3: (0.90 - 0.86) / 0.4 + (9000 - 7000) / 8000 = 0.1 + 0.25 = 0.35
#   P0, P4: inf (P4 first: more accurate)
# Order: P4, P0, P1, P2, P3, P5. P1 survives although P2 and P3 are more accurate.
SPREAD = [(0.50, 1000), (0.70, 3000), (0.86, 7000), (0.88, 8000), (0.90, 9000), (0.40, 5000)]
HALVING = StopRule(max_epochs=30, min_epochs=1, eta=2)  # rungs 1, 2, 4, 8, 16


def _study(points, epochs=2):
    return [_trial(a, p, epochs) for a, p in points]


def test_crowding_distances_of_the_spread_study_by_hand():
    distances = crowding_distance(SPREAD, [0, 1, 2, 3, 4], ("maximize", "minimize"))
    assert distances[0] == distances[4] == math.inf
    assert distances[1:4] == pytest.approx([1.65, 1.075, 0.35])
    assert rank_at_rung(SPREAD) == [4, 0, 1, 2, 3, 5]


@pytest.mark.parametrize(
    "index,decision",
    [
        (4, Decision(False, "")),
        (0, Decision(False, "")),
        (1, Decision(False, "")),
        (2, Decision(True, "rung 2: rank 4 of 6, keeps top 3")),
        (3, Decision(True, "rung 2: rank 5 of 6, keeps top 3")),
        (5, Decision(True, "rung 2: rank 6 of 6, keeps top 3")),
    ],
)
def test_crowding_breaks_ties_inside_a_front(index, decision):
    trials = _study(SPREAD)
    others = trials[:index] + trials[index + 1 :]
    assert decide(*trials[index], others, HALVING) == decision


def test_plain_accuracy_ranking_would_have_kept_p2_and_p3_instead_of_p1():
    accuracies = [a for a, _ in SPREAD]
    assert _accuracy_rank(0.70, accuracies) == 4
    assert _accuracy_rank(0.86, accuracies) == 3


def test_identical_trials_tie_in_the_candidates_favour():
    # keeps 1 of 3; the two leaders are identical: neither stops the other
    twin, weak = _trial(0.80, 1000), _trial(0.50, 2000)
    assert decide(*twin, [twin, weak], RULE) == Decision(False, "")
    assert rank_at_rung([(0.8, 1000), (0.5, 2000), (0.8, 1000)]) == [0, 2, 1]


def test_rung_reason_wins_over_plateau():
    rule = StopRule(max_epochs=30, min_epochs=1, patience=1)
    flat = ([0.50, 0.50, 0.50], 5000)  # also a plateau
    assert decide(*flat, EIGHT_OTHERS, rule).reason == "rung 3: rank 9 of 9, keeps top 3"


# --- plateau rule ------------------------------------------------------------------------------

NO_RUNGS = dict(max_epochs=100, min_epochs=50)  # rung at 50 only, so epochs below judge plateaus


@pytest.mark.parametrize(
    "curve,patience,min_delta,reason",
    [
        ([0.5, 0.6, 0.6], 3, 0.0, ""),  # not yet patience + 1 epochs
        ([0.5, 0.6, 0.6, 0.6], 3, 0.0, ""),  # 0.6 > 0.5 within the window
        ([0.5, 0.6, 0.6, 0.6, 0.6], 3, 0.0, "plateau: no gain > 0.0 in 3 epochs"),
        ([0.5, 0.7, 0.6, 0.65, 0.66], 3, 0.0, "plateau: no gain > 0.0 in 3 epochs"),
        ([0.5, 0.6, 0.61, 0.61, 0.61], 3, 0.02, "plateau: no gain > 0.02 in 3 epochs"),
        ([0.5, 0.6, 0.61, 0.61, 0.63], 3, 0.02, ""),  # 0.03 > 0.02
        ([0.5, 0.5], 1, 0.0, "plateau: no gain > 0.0 in 1 epochs"),
        ([0.5, 0.51], 1, 0.0, ""),
    ],
)
def test_plateau(curve, patience, min_delta, reason):
    rule = StopRule(**NO_RUNGS, patience=patience, min_delta=min_delta)
    assert decide(curve, 1000, [], rule) == Decision(stop=bool(reason), reason=reason)


def test_plateau_is_judged_on_rung_epochs_too():
    rule = StopRule(max_epochs=30, min_epochs=1, patience=2)
    best = ([0.90, 0.90, 0.90], 100)  # first at rung 3, but flat
    assert decide(*best, EIGHT_OTHERS, rule) == Decision(
        True, "plateau: no gain > 0.0 in 2 epochs"
    )


def test_no_plateau_rule_without_patience():
    assert decide([0.5] * 20, 1000, [], StopRule(**NO_RUNGS)) == Decision(False, "")


# --- switch, determinism, argument errors ------------------------------------------------------


def test_disabled_rule_never_stops():
    off = StopRule(max_epochs=30, min_epochs=1, patience=1, enabled=False)
    assert decide(*_trial(0.50, 5000), EIGHT_OTHERS, off) == Decision(False, "")
    assert decide([0.5] * 10, 1000, [], off) == Decision(False, "")


@pytest.mark.parametrize("index", range(len(SPREAD)))
def test_order_of_others_never_changes_the_decision(index):
    trials = _study(SPREAD)
    others = trials[:index] + trials[index + 1 :] + [trials[index]]  # with a twin of itself
    expected = decide(*trials[index], others, HALVING)
    assert decide(*trials[index], others, HALVING) == expected  # same inputs, same result
    for order in itertools.permutations(others):
        assert decide(*trials[index], list(order), HALVING) == expected


def test_order_of_others_in_a_larger_study():
    rng = random.Random(0)
    trials = [
        _trial(round(rng.uniform(0.3, 0.9), 2), rng.choice([500, 1000, 2000, 4000]))
        for _ in range(40)
    ]
    for index in range(0, 40, 5):
        others = trials[:index] + trials[index + 1 :]
        expected = decide(*trials[index], others, RULE)
        for _ in range(20):
            rng.shuffle(others)
            assert decide(*trials[index], others, RULE) == expected


@pytest.mark.parametrize(
    "args,match",
    [
        (([0.5, math.nan, 0.6], 10, []), "curve must hold finite accuracies, but epoch 2"),
        (([0.5, True], 10, []), "curve must hold finite accuracies"),
        (("abc", 10, []), "curve must be a sequence"),
        (([0.5], -1, []), r"params must be an integer >= 0, but got params=-1\."),
        (([0.5], 10.0, []), "params must be an integer >= 0"),
        (([0.5], 10, [([0.5], 10, 3)]), r"others\[0\] must be a \(curve, params\) pair"),
        (([0.5], 10, [([0.5], 10), ([math.inf], 10)]), r"others\[1\]\[0\] must hold finite"),
        (([0.5], 10, [([0.5], True)]), r"others\[0\]\[1\] must be an integer >= 0"),
        (([0.5], 10, None), "others must be a sequence"),
    ],
)
def test_decide_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        decide(*args, RULE)


def test_decide_needs_a_stop_rule():
    with pytest.raises(ValueError, match="rule must be a StopRule"):
        decide([0.5], 10, [], {"max_epochs": 10})


@pytest.mark.parametrize("points", [[(0.5,)], [(0.5, 10.5)], [(math.nan, 10)], [(0.5, -1)], "ab"])
def test_rank_at_rung_rejects_bad_points(points):
    with pytest.raises(ValueError, match="points"):
        rank_at_rung(points)


# --- noise margin and twin ends ----------------------------------------------------------------


@pytest.mark.parametrize(
    "rule_fields,stop",
    [
        # margin 0: (0.94, 9000) is dominated by the accurate end (0.95, 9000) and ranks outside the top 3
        (dict(), True),
        # 1,000 validation images: one SE of the difference at 0.94 is sqrt(2 * .94 * .06 / 1000) = 0.0106;
        # raised to 0.9506 the candidate would be the front's accurate end, so it is within the noise
        (dict(val_images=1000), False),
        # 10,000 images: 0.0034, raised to 0.9434 it is still dominated by 0.95: it trails beyond the noise
        (dict(val_images=10_000), True),
        (dict(margin=0.02), False),  # a margin the user sets wins over the validation noise
        (dict(margin=0.0, val_images=1000), True),
    ],
)
def test_a_trial_is_stopped_only_when_it_trails_by_more_than_the_noise(rule_fields, stop):
    rule = StopRule(max_epochs=30, min_epochs=1, **rule_fields)
    decision = decide(_trial(0.94, 9000)[0], 9000, EIGHT_OTHERS, rule)
    assert decision.stop is stop
    if stop:
        assert decision.reason.startswith("rung 3: rank")


def test_noise_margin_fields_are_checked():
    assert StopRule(max_epochs=10, val_images=5000).noise_margin(0.6) == pytest.approx(
        math.sqrt(2 * 0.24 / 5000)
    )
    assert StopRule(max_epochs=10).noise_margin(0.6) == 0.0
    for field, value in (
        ("margin", -0.1),
        ("margin", math.nan),
        ("val_images", 0),
        ("val_images", 2.5),
    ):
        with pytest.raises(ValueError, match=field):
            StopRule(**{"max_epochs": 10, field: value})


def test_the_small_end_is_kept_when_the_accurate_end_has_a_twin():
    # Three trials at rung 1, keep max(1, 3 // 3, ends). The accurate end (0.95, 9000) appears twice;
    # counted as points the two twins fill the two "end" places and the small end was stopped.
    rule = StopRule(max_epochs=30, min_epochs=1)
    twins = [([0.95], 9000), ([0.95], 9000)]
    assert decide([0.40], 500, twins, rule) == Decision(False, "")


def test_twins_of_an_end_are_all_kept():
    rule = StopRule(max_epochs=30, min_epochs=1)
    others = [
        ([0.40], 500),
        ([0.95], 9000),
        ([0.6], 3000),
        ([0.5], 4000),
        ([0.55], 5000),
        ([0.45], 6000),
    ]
    assert not decide([0.40], 500, others, rule).stop  # identical to the small end
    assert not decide([0.95], 9000, others, rule).stop  # identical to the accurate end
    assert decide([0.44], 7000, others, rule).stop  # a dominated middle trial is still stopped
