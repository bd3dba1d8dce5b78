import json

import optuna
import pytest

from nas.space import PRESETS, SearchSpace, define_space, load_space, plan_from_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


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
    space = PRESETS[preset]
    plans = _sample(space, 150)
    for plan in plans:
        assert plan.depth in space.depths and plan.width in space.widths
        for stage in plan.stages:
            assert sum(n for n, _ in stage) == plan.shareable_per_stage
            assert all(t is None or space.min_templates <= t <= space.max_templates for _, t in stage)
    names = {p.name for p in plans}
    assert any(n.startswith("WRN-") for n in names), "plain WRNs must be in the space"
    assert any(len(stage) > 1 for p in plans for stage in p.stages), "group boundaries must vary"
    assert len({p.text for p in plans}) > 20


def test_space_switches_restrict_the_plans():
    space = SearchSpace(depths=(16, 22), widths=(1,), min_templates=2, max_templates=3,
                        allow_unshared_groups=False, allow_plain=False, allow_cuts=False)
    for plan in _sample(space, 60):
        assert plan.is_shared
        assert all(len(stage) == 1 and stage[0][1] in (2, 3) for stage in plan.stages)


def test_define_space_is_pure_and_plan_round_trips_through_params():
    space = PRESETS["cpu"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    define_space(trial, space)
    again = optuna.trial.FixedTrial(dict(trial.params))
    define_space(again, space)  # the same values give the same plan
    assert plan_from_params(again.params) == plan_from_params(trial.params)


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(depths=(12,)), "depths must be"),
    (dict(depths=()), "depths must be"),
    (dict(widths=(0,)), "widths must be"),
    (dict(min_templates=0), "min_templates"),
    (dict(min_templates=3, max_templates=2), "max_templates"),
    (dict(allow_plain="yes"), "allow_plain"),
])
def test_invalid_ranges_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        SearchSpace(**kwargs)


def test_valid_edges_pass():
    SearchSpace(depths=(10,), widths=(1,), min_templates=1, max_templates=1)


def test_load_space_from_json_and_toml(tmp_path):
    j = tmp_path / "space.json"
    j.write_text(json.dumps({"depths": [16, 22], "max_templates": 5}))
    space = load_space(j, PRESETS["smoke"])
    assert space.depths == (16, 22) and space.max_templates == 5 and space.widths == PRESETS["smoke"].widths
    t = tmp_path / "space.toml"
    t.write_text("widths = [2, 4]\nallow_plain = false\n")
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
