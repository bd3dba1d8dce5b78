"""nas.sampler: every proposal a new architecture, the budget learned, the end of a small space.

Studies here are real Optuna studies on a real journal storage; their "training" is a stand-in
that tells each trial a made-up accuracy at once, so a test can run hundreds of proposals.
The last test runs a real study (tiny generated data) until its space is exhausted.
"""

import logging
import random

import optuna
import pytest
from optuna.trial import TrialState

from nas.config import StudyConfig
from nas.optuna_backend import run_study
from nas.sampler import ArchitectureSampler, SpaceExhausted
from nas.schema import OVER_BUDGET, PROPOSAL_ATTR
from nas.space import SearchSpace, all_plans
from nas.storage import open_storage, open_study
from nas.study import make_sampler, prepare_study, slots_left, study_counts
from nas.trial import trial_plan
from softshare import parse_plan
from tests.studies import ONE_RUN

# 26 shared architectures: one bank per stage (no cuts), 0, 1 or 2 templates, 3^3 minus the plain net
TINY = SearchSpace(depths=(16,), widths=(1,), max_templates=2, allow_cuts=False)


def _cfg(name="s", sampler="tpe", **fields) -> StudyConfig:
    return StudyConfig(name=name, preset="smoke", sampler=sampler, space=TINY.to_dict(), **fields)


def _stand_in_train(study, trial, cfg, rng, state=TrialState.COMPLETE) -> str:
    """Describe ``trial`` as the study does, then tell it at once with a made-up accuracy."""
    plan = trial_plan(trial, cfg.search_space())
    params = plan.num_parameters()
    trial.set_user_attr("plan", plan.text)
    trial.set_user_attr("params", params)
    trial.set_user_attr("status", "complete" if state == TrialState.COMPLETE else "pruned")
    if state == TrialState.COMPLETE:
        study.tell(trial, [rng.random(), params])
    else:
        study.tell(trial, state=state)
    return plan.text


@pytest.mark.parametrize(
    "sampler", [pytest.param("tpe", marks=pytest.mark.slow), "random", "nsga2"]
)
def test_every_trial_is_a_new_architecture_and_none_is_told_complete_twice(tmp_path, sampler):
    cfg = _cfg(sampler=sampler)
    study = open_study("s", open_storage(tmp_path), make_sampler(cfg, (10, 3)))
    rng = random.Random(0)
    plans = [
        _stand_in_train(
            study, study.ask(), cfg, rng, TrialState.PRUNED if i % 3 == 0 else TrialState.COMPLETE
        )
        for i in range(20)
    ]
    assert len(set(plans)) == 20
    assert all(parse_plan(p).is_shared for p in plans), "plain WRNs are baselines, never proposed"
    # the storage itself: no two finished trials hold the same plan, whatever their state
    stored = [
        t.user_attrs["plan"]
        for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    ]
    assert len(stored) == len(set(stored)) == 20
    proposals = [t.user_attrs[PROPOSAL_ATTR] for t in study.get_trials()]
    assert {p["source"] for p in proposals} <= {"sampler", "random"}


def test_a_small_space_ends_with_a_clear_error_and_exhausted_says_so_first(tmp_path):
    cfg = _cfg()
    study = open_study("s", open_storage(tmp_path), make_sampler(cfg, (10, 3)))
    rng = random.Random(1)
    plans = set()
    for _ in range(26):
        assert not study.sampler.exhausted(study)
        plans.add(_stand_in_train(study, study.ask(), cfg, rng))
    assert plans == {p.text for p in all_plans(TINY)}
    assert study.sampler.exhausted(study)
    trial = study.ask()
    with pytest.raises(SpaceExhausted, match="all 26 architectures"):
        trial_plan(trial, TINY)


def test_running_trials_queued_baselines_and_diverged_plans_are_not_proposed(tmp_path):
    cfg = _cfg()
    study = open_study("s", open_storage(tmp_path), make_sampler(cfg, (10, 3)))
    plans = [p.text for p in all_plans(TINY)]
    running = study.ask()  # another worker's trial, still training
    running.set_user_attr("plan", plans[0])
    running.set_user_attr("claimed", True)  # it holds the plan (nas.trial.claim)
    study.enqueue_trial({}, user_attrs={"baseline": True, "plan": plans[1]})
    diverged = optuna.trial.create_trial(
        state=TrialState.FAIL, user_attrs={"plan": plans[2], "reason": "diverged: loss is nan"}
    )
    crashed = optuna.trial.create_trial(
        state=TrialState.FAIL, user_attrs={"plan": plans[3], "reason": "killed"}
    )
    study.add_trials([diverged, crashed])
    sampler = study.sampler
    taken = sampler._taken(study)
    assert taken == {
        plans[0]: "running or queued",
        plans[1]: "running or queued",
        plans[2]: "diverged",
    }
    seen = {plans[0], plans[1], plans[2]}
    rng = random.Random(2)
    for _ in range(23):  # 26 - 3: the crashed plan (not a property of the plan) may come again
        trial = study.ask()
        if trial.user_attrs.get("baseline"):
            trial.set_user_attr("claimed", True)  # its worker trains it (nas.trial.claim)
            continue
        plan = _stand_in_train(study, trial, cfg, rng)
        assert plan not in seen
        seen.add(plan)


def test_a_plan_that_ran_out_of_memory_is_not_proposed_again(tmp_path):
    """Under a fixed memory cap an out-of-memory plan fails again: it is taken like a diverged
    one, so a small space ends "exhausted" instead of failing it over and over (issue 25)."""
    import torch

    from nas.devices import oom_reason
    from nas.trial import failure_reason

    cfg = _cfg()
    study = open_study("s", open_storage(tmp_path), make_sampler(cfg, (10, 3)))
    plans = [p.text for p in all_plans(TINY)]
    reasons = [
        oom_reason(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")),
        failure_reason(RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory")),
        failure_reason(RuntimeError("CUDA error: out of memory")),
    ]
    failed = [
        optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"plan": plan, "reason": why})
        for plan, why in zip(plans, reasons)
    ]
    study.add_trials(failed)
    assert study.sampler._taken(study) == dict.fromkeys(plans[:3], "out of memory")
    rng = random.Random(4)
    for _ in range(len(plans) - 3):
        assert not study.sampler.exhausted(study)
        assert _stand_in_train(study, study.ask(), cfg, rng) not in plans[:3]
    assert study.sampler.exhausted(study)


def test_over_budget_proposals_take_no_slot_and_teach_the_sampler_the_budget(tmp_path):
    budget = parse_plan("16-1:2x1/2x1/2x2").num_parameters()  # 11 of the 26 plans fit
    fits = [p for p in all_plans(TINY) if p.num_parameters() <= budget]
    cfg = _cfg(max_params=budget, n_trials=10)
    study = open_study("s", open_storage(tmp_path), make_sampler(cfg, (10, 3)))
    rng = random.Random(3)
    trained = [_stand_in_train(study, study.ask(), cfg, rng) for _ in range(10)]
    assert all(parse_plan(p).num_parameters() <= budget for p in trained)
    over = [t for t in study.get_trials() if t.user_attrs.get("status") == OVER_BUDGET]
    assert over, "the samplers proposed over-budget plans: they are recorded, not trained"
    for t in over:
        assert t.state == TrialState.PRUNED and t.constraints["max_params"] > 0
        assert t.user_attrs["params"] > budget
    assert len({t.user_attrs["plan"] for t in over}) == len(over), (
        "each over-budget plan is recorded once"
    )
    assert study_counts(study)["over-budget"] == len(over)
    assert (
        slots_left(study, cfg.n_trials) == 0
    )  # 10 trained, whatever the number recorded over budget
    assert len(fits) == 11  # counted by nas.space.all_plans: enough for the 10 slots


def test_attempts_are_checked():
    with pytest.raises(ValueError, match="attempts"):
        ArchitectureSampler(optuna.samplers.RandomSampler(), TINY, (10, 3), None, attempts=0)


@pytest.mark.slow
def test_a_real_study_stops_with_one_line_when_its_space_is_exhausted(tmp_path, caplog):
    # 7 architectures (per stage 2 or 2x1, minus the plain net) and 2 baselines (WRN-16-1 and
    # SWRN-16-1-1, which is one of the 7): 8 distinct models, 12 slots asked for.
    space = SearchSpace(depths=(16,), widths=(1,), max_templates=1, allow_cuts=False)
    cfg = StudyConfig(
        name="tiny",
        preset="smoke",
        n_trials=12,
        space=space.to_dict(),
        data={"synthetic_train": 120, "synthetic_test": 20, "image_size": 8, "val_fraction": 0.25},
        recipe={"epochs": 1, "batch_size": 32},
        device="cpu",
        **ONE_RUN,
    )
    with caplog.at_level(logging.WARNING, logger="nas.study"):
        study = run_study(cfg, tmp_path / "tiny")
    plans = [t.user_attrs["plan"] for t in study.get_trials() if t.state.is_finished()]
    assert len(plans) == len(set(plans)) == 8
    assert sum(bool(t.user_attrs.get("baseline")) for t in study.get_trials()) == 2
    lines = [r.getMessage() for r in caplog.records if "exhausted" in r.getMessage()]
    assert len(lines) == 1 and "4 slot(s) left" in lines[0]
    # resuming changes nothing: the same line, no new trial, nothing lost
    again = run_study(cfg, tmp_path / "tiny")
    assert len(again.get_trials()) == len(study.get_trials())


def test_baselines_are_queued_once_marked_and_never_searched(tmp_path):
    cfg = StudyConfig(name="b", preset="cpu", n_trials=20, data={"dataset": "synthetic"})
    folder = tmp_path / "b"
    prepare_study(cfg, folder, (10, 3))
    prepare_study(cfg, folder, (10, 3))  # a resume queues nothing more
    study = open_study("b", open_storage(folder))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    names = [t.user_attrs["plan_name"] for t in waiting]
    # the baselines, then each one's second seed (baseline_seeds 2), queued right behind them
    assert names == ["SWRN-22-1-1", "SWRN-28-1-2", "SWRN-22-1-3", "WRN-22-1", "WRN-28-1"] * 2
    assert all(t.user_attrs["baseline"] is True for t in waiting)
    assert study.user_attrs["baselines"] == names[:5]
    assert [t.user_attrs.get("replicate_of") for t in waiting] == [None] * 5 + [0, 1, 2, 3, 4]
    assert [t.user_attrs.get("seed") for t in waiting[5:]] == [1] * 5
    none = StudyConfig(
        name="n", preset="cpu", n_trials=20, baselines="none", data={"dataset": "synthetic"}
    )
    prepare_study(none, tmp_path / "n", (10, 3))
    assert not open_study("n", open_storage(tmp_path / "n")).get_trials()
    for bad in ("some", "paper:0", "paper:21", "paper:x"):
        with pytest.raises(
            ValueError, match=f"unknown baselines '{bad}'; accepted: paper, paper:N"
        ):
            StudyConfig(name="x", n_trials=20, baselines=bad)
    two = StudyConfig(
        name="t",
        preset="cpu",
        n_trials=20,
        baselines="paper:2",
        baseline_seeds=1,
        data={"dataset": "synthetic"},
    )
    prepare_study(two, tmp_path / "t", (10, 3))
    assert [
        t.user_attrs["plan_name"]
        for t in open_study("t", open_storage(tmp_path / "t")).get_trials()
    ] == ["SWRN-22-1-1", "WRN-22-1"]
