"""softshare.plan: plan text, names, canonical form and analytic counts."""

import json
import re

import pytest

from softshare import (
    SharingPlan,
    parse_plan,
)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("WRN-28-10", 36_479_194),
        *[(f"SWRN-28-10-{s}", 7_448_794 + 4_838_418 * s) for s in (1, 2, 4, 6)],
    ],
)
def test_paper_parameter_counts_analytic(name, expected):
    assert parse_plan(name).num_parameters(num_classes=10) == expected


def test_named_plans_and_text_round_trip():
    plan = parse_plan("SWRN-28-10-2")
    assert plan.text == "28-10:6x2/6x2/6x2" and plan.name == "SWRN-28-10-2"
    assert parse_plan(plan.text) == plan
    assert parse_plan("WRN-28-10").text == "28-10:6/6/6"
    mixed = parse_plan("28-10:2x3,4/6x2/6")
    assert mixed.name == mixed.text == "28-10:2x3,4/6x2/6"
    assert mixed.templates_per_group() == [[3, None], [2], [None]]
    assert SharingPlan.from_dict(json.loads(json.dumps(mixed.to_dict()))) == mixed


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("WRN-27-10", "depth must be 6N+4"),
        ("WRN-4-10", "depth must be 6N+4"),
        ("SWRN-16-4-0", "templates >= 1"),
        ("16-4:2x0/2/2", "templates >= 1"),
        ("16-4:1x2/2/2", "stage 1 groups cover 1 layers"),
        ("16-4:2x2,1/2/2", "stage 1 groups cover 3 layers"),
        ("16-4:2/2", "needs 3"),
        ("16-0:2/2/2", "width must be"),
        ("16-4:2y3/2/2", "cannot read group"),
        ("hello", "accepted"),
    ],
)
def test_bad_plans_raise_value_error_naming_the_problem(text, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_plan(text)


def test_valid_edges_are_accepted():
    assert parse_plan("WRN-10-1").shareable_per_stage == 0
    assert parse_plan("SWRN-16-1-1").num_parameters() > 0
    assert parse_plan("16-4:1x1,1/2/2").is_shared
