"""nas.trial: one trial's runner and record on every backend: the one "taken" rule, how a run's
end becomes the trial's state (run_one), and what a trial finished elsewhere keeps."""

from __future__ import annotations

import errno

import optuna
import pytest
from optuna.trial import TrialState

import nas.trial as trial_module
from nas.schema import ERROR_FILE, REPLICATE_ATTR
from nas.space import SearchSpace, all_plans
from nas.storage import fail_running_trial, open_storage, open_study
from nas.study import make_sampler
from nas.trial import Ended, TrialContext, finish_trial, run_one, skip_reason, trial_attrs
from softshare import parse_plan
from softshare.data import load_dataset
from tests.studies import smoke_cfg

TINY = SearchSpace(depths=(16,), widths=(1,), max_templates=2, allow_cuts=False)


def _cfg():
    return smoke_cfg("s", space=TINY.to_dict())


def test_the_sampler_proposes_exactly_the_plans_a_trial_of_them_may_train(tmp_path):
    """One rule (nas.trial.taken) says when an architecture is taken: the sampler proposes no
    taken plan, and a trial of one is skipped. The two used to disagree: a plan that diverged
    was never proposed but trained again when queued; one only a replicate had trained, or one
    another worker had described but not yet claimed, was never proposed but trained."""
    cfg = _cfg()
    study = open_study("s", open_storage(tmp_path), make_sampler(cfg, (10, 3)))
    plans = [p.text for p in all_plans(TINY)]
    unclaimed = study.ask()  # another worker's trial, between describing and claiming its plan
    unclaimed.set_user_attr("plan", plans[0])
    diverged = {"plan": plans[1], "reason": "diverged: non-finite training loss in epoch 1"}
    replicate = {"plan": plans[2], "status": "complete", REPLICATE_ATTR: 9, "seed": 7}
    study.add_trials(
        [
            optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=diverged),
            optuna.trial.create_trial(
                state=TrialState.COMPLETE, values=[0.5, 1.0], user_attrs=replicate
            ),
        ]
    )
    asking = study.ask()
    proposable = set(plans) - set(study.sampler._taken(study, asking.number))
    shape = (10, 3, 32)
    for plan in plans[:4]:
        attrs = trial_attrs(parse_plan(plan), shape, {"seed": cfg.seed})
        ctx = TrialContext(cfg, tmp_path, asking.number, shape, attrs, study)
        assert (skip_reason(ctx) is None) == (plan in proposable), plan
    assert proposable >= {plans[0], plans[2], plans[3]} and plans[1] not in proposable
    ctx.attrs = trial_attrs(parse_plan(plans[1]), shape, {"seed": cfg.seed})
    assert skip_reason(ctx) == (
        "duplicate",
        "same architecture as trial 1 (diverged); not trained",
    )


def test_a_trial_finished_by_another_process_is_left_as_it_is(tmp_path, caplog):
    study = open_study("s", open_storage(tmp_path))
    trial = study.ask()
    frozen = study.get_trials(deepcopy=False)[0]
    assert fail_running_trial(study, frozen, "worker died")  # another process's verdict
    ctx = TrialContext(None, tmp_path, trial.number, (10, 3, 32), {"params": 10}, study, trial)
    with caplog.at_level("WARNING", logger="nas.trial"):
        status = finish_trial(ctx, Ended(TrialState.COMPLETE, "complete"))
    assert status == "complete" and "finished by another process" in caplog.text
    kept = study.get_trials(deepcopy=False)[0]
    assert kept.state == TrialState.FAIL and kept.user_attrs["reason"] == "worker died"


def _context(folder) -> TrialContext:
    """A one-epoch trial of SWRN-16-1-1 on tiny generated data, ready for run_one."""
    cfg = smoke_cfg("r", recipe={"epochs": 1})
    data = load_dataset(cfg.data_config())
    shape = (data.num_classes, 3, data.train.images.shape[-1])
    attrs = trial_attrs(parse_plan("SWRN-16-1-1"), shape, {"seed": 0})
    ctx = TrialContext(cfg, folder, 0, shape, attrs, data=data)
    ctx.folder.mkdir(parents=True)
    return ctx


@pytest.mark.parametrize(
    "raised, state, reason, ends_study",
    [
        (RuntimeError("boom"), TrialState.FAIL, "RuntimeError: boom", False),
        (OSError(errno.ENOSPC, "No space left on device"), TrialState.FAIL, "OSError", True),
        (KeyboardInterrupt(), TrialState.FAIL, "interrupted", True),
    ],
)
def test_run_one_maps_what_a_run_raises_to_the_trials_end(
    tmp_path, monkeypatch, raised, state, reason, ends_study
):
    ctx = _context(tmp_path)
    released = []
    monkeypatch.setattr(trial_module, "release_memory", lambda *a: released.append(1))

    def failing(*args, **kwargs):
        raise raised

    monkeypatch.setattr(trial_module, "train", failing)
    ended = run_one(ctx)
    assert isinstance(ended, Ended) and ended.state == state and reason in ended.reason
    assert (ended.error is raised) == ends_study  # re-raised by finish once recorded
    # the trial's own failure leaves its traceback; the study's ends leave it to the study
    assert (ctx.folder / ERROR_FILE).is_file() == (not ends_study)
    assert released == [1]  # the card is given back whatever happened


def test_run_one_trains_and_keeps_the_coefficients_not_the_weights(tmp_path):
    ctx = _context(tmp_path)
    seen = []
    ended = run_one(ctx, callback=lambda result: seen.append(result.epochs_run))
    assert ended.state == TrialState.COMPLETE and ended.status == "complete"
    assert ended.result.epochs_run == 1 and seen == [1]
    assert (ctx.folder / "coefficients.json").is_file()
    assert not (ctx.folder / "checkpoint.pt").exists()
