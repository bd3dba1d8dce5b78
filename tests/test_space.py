import json
import random

import optuna
import pytest

from nas.config import PRESETS, preset_space
from nas.space import (
    SearchSpace,
    all_plans,
    define_space,
    load_space,
    params_from_plan,
    plan_from_params,
    random_plan,
    smallest_plan,
    space_size,
    stage_options,
)
from softshare import parse_plan


def _sample(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    plans = []
    for _ in range(n):
        trial = study.ask()
        define_space(trial, space)
        plans.append(plan_from_params(trial.params))
        study.tell(trial, 0.0)
    return plans


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_space_yields_only_valid_plans_inside_bounds(preset):
    space = preset_space(preset)
    plans = _sample(space, 150)
    for plan in plans:
        assert plan.depth in space.depths and plan.width in space.widths
        for stage in plan.stages:
            assert sum(n for n, _ in stage) == plan.shareable_per_stage
            assert all(
                t is None or space.min_templates <= t <= space.max_templates for _, t in stage
            )
            assert all(t is None or t <= n for n, t in stage), (
                f"{plan.text}: a bank larger than its group"
            )
    assert any(len(stage) > 1 for p in plans for stage in p.stages), "group boundaries must vary"
    assert len({p.text for p in plans}) > 20


def test_space_switches_restrict_the_plans():
    space = SearchSpace(
        depths=(16, 22),
        widths=(1,),
        min_templates=2,
        max_templates=3,
        allow_unshared_groups=False,
        allow_cuts=False,
    )
    for plan in _sample(space, 60):
        assert plan.is_shared
        assert all(len(stage) == 1 and stage[0][1] in (2, 3) for stage in plan.stages)


def test_template_cap_follows_the_group_and_the_option_lifts_it():
    capped, large = (
        SearchSpace(max_templates=4),
        SearchSpace(max_templates=4, allow_large_banks=True),
    )
    assert capped.template_choices(1) == [0, 1] and capped.template_choices(2) == [0, 1, 2]
    assert capped.template_choices(6) == [0, 1, 2, 3, 4]
    assert large.template_choices(1) == [0, 1, 2, 3, 4]
    assert SearchSpace(allow_unshared_groups=False).template_choices(3) == [1, 2, 3]

    # the option reaches the sampled plans: a 1-layer group with 2+ templates exists only with it
    def over(plans):
        return any(t is not None and t > n for p in plans for s in p.stages for n, t in s)

    assert not over(_sample(SearchSpace(depths=(16,), widths=(1,), max_templates=3), 200))
    assert over(
        _sample(
            SearchSpace(depths=(16,), widths=(1,), max_templates=3, allow_large_banks=True), 200
        )
    )


def test_equivalent_encodings_collapse_to_one_canonical_plan():
    assert parse_plan("16-1:1,1/2/2") == parse_plan("WRN-16-1")
    assert parse_plan("16-1:1,1/2/2").name == "WRN-16-1"
    assert parse_plan("22-1:1,1x2,1,1/4/4").text == "22-1:1,1x2,2/4/4"
    assert parse_plan("22-2:4x2/4x2/4x2").name == "SWRN-22-2-2"
    assert parse_plan("SWRN-22-2-2").text == "22-2:4x2/4x2/4x2"
    # two define_space encodings of one plan (a cut between two unshared groups, or none) agree
    a = plan_from_params(
        {
            "depth": 16,
            "width": 1,
            "s1_cut1": True,
            "s1_g1_L1_templates": 0,
            "s1_g2_L1_templates": 0,
            "s2_cut1": False,
            "s2_g1_L2_templates": 2,
            "s3_cut1": False,
            "s3_g1_L2_templates": 2,
        }
    )
    b = plan_from_params(
        {
            "depth": 16,
            "width": 1,
            "s1_cut1": False,
            "s1_g1_L2_templates": 0,
            "s2_cut1": False,
            "s2_g1_L2_templates": 2,
            "s3_cut1": False,
            "s3_g1_L2_templates": 2,
        }
    )
    assert a == b and a.text == "16-1:2/2x2/2x2"


def test_depth_10_has_nothing_to_share():
    with pytest.raises(ValueError, match="no shareable conv"):
        parse_plan("SWRN-10-4-2")
    assert parse_plan("WRN-10-4").name == "WRN-10-4"
    with pytest.raises(ValueError, match="depth 10 has nothing to share"):
        SearchSpace(depths=(10, 16))


def test_the_space_as_a_set_of_architectures():
    space = preset_space(
        "smoke"
    )  # depth 16: per stage 2 (3 bank sizes) or 1+1 (2 x 2 minus the plain one) = 6
    assert len(stage_options(space, 2)) == 6
    plans = all_plans(space)
    assert space_size(space) == len(plans) == 6**3 - 1 == len({p.text for p in plans})
    assert all(p.is_shared for p in plans)
    assert all_plans(preset_space("paper")) is None  # too many to list
    rng = random.Random(0)
    for _ in range(50):
        plan = random_plan(preset_space("cpu"), rng)
        assert plan.is_shared and plan_from_params(params_from_plan(plan)) == plan


def test_define_space_is_pure_and_plan_round_trips_through_params():
    space = preset_space("cpu")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    define_space(trial, space)
    again = optuna.trial.FixedTrial(dict(trial.params))
    define_space(again, space)  # the same values give the same plan
    assert plan_from_params(again.params) == plan_from_params(trial.params)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(depths=(12,)), "depths must be"),
        (dict(depths=()), "depths must be"),
        (dict(widths=(0,)), "widths must be"),
        (dict(min_templates=0), "min_templates"),
        (dict(min_templates=3, max_templates=2), "max_templates"),
        (dict(allow_cuts="yes"), "allow_cuts"),
        (dict(allow_large_banks=1), "allow_large_banks"),
    ],
)
def test_invalid_ranges_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        SearchSpace(**kwargs)


def test_valid_edges_pass():
    SearchSpace(depths=(16,), widths=(1,), min_templates=1, max_templates=1)


def test_load_space_from_json_and_toml(tmp_path):
    j = tmp_path / "space.json"
    j.write_text(json.dumps({"depths": [16, 22], "max_templates": 5}))
    space = load_space(j, preset_space("smoke"))
    assert (
        space.depths == (16, 22)
        and space.max_templates == 5
        and space.widths == preset_space("smoke").widths
    )
    t = tmp_path / "space.toml"
    t.write_text("widths = [2, 4]\nallow_cuts = false\n")
    assert load_space(t).widths == (2, 4)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"depths": [13]}))
    with pytest.raises(ValueError, match="depths must be"):
        load_space(bad)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"depth": [16]}))
    with pytest.raises(ValueError, match="unknown search space keys"):
        load_space(unknown)
    broken = tmp_path / "broken.toml"
    broken.write_text("depths = [16,")
    with pytest.raises(ValueError, match="cannot read search space file"):
        load_space(broken)
    with pytest.raises(FileNotFoundError):
        load_space(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "ranges",
    [
        {"depths": [16, 22], "widths": [1, 2], "allow_cuts": False},
        {"depths": [22], "min_templates": 4, "max_templates": 4},  # the cheapest grouping is plain
        {"depths": [22], "allow_cuts": False, "allow_unshared_groups": False},
        {"depths": [16], "min_templates": 3, "max_templates": 3},  # nothing shareable
    ],
)
def test_smallest_plan_is_the_cheapest_shared_architecture_of_the_space(ranges):
    space = SearchSpace.from_dict(ranges)
    plans = all_plans(space)
    assert plans is not None  # small enough to list
    found = smallest_plan(space, 100, 1)
    if not plans:
        assert found is None
        return
    assert found.is_shared and found in plans
    assert found.num_parameters(100, 1) == min(p.num_parameters(100, 1) for p in plans)
