"""nas.baselines: a failed baseline is queued again as a baseline, when trying again can help."""

from optuna.trial import TrialState, create_trial

from nas.baselines import MAX_BASELINE_TRIES, requeue_failed_baselines
from nas.storage import open_storage, open_study


def _baseline(plan: str, state=TrialState.FAIL, status="failed", reason="interrupted"):
    attrs = {"baseline": True, "plan": plan, "plan_name": plan.upper(), "status": status}
    attrs |= {"reason": reason} if reason else {}
    values = [0.5, 100.0] if state == TrialState.COMPLETE else None
    return create_trial(state=state, values=values, user_attrs=attrs)


def test_only_baselines_failed_by_their_run_are_queued_again_once(tmp_path):
    study = open_study("b", open_storage(tmp_path))
    study.add_trials(
        [
            _baseline("a"),  # interrupted: queued again
            _baseline("b", reason="worker host:1 died"),
            _baseline("b", state=TrialState.COMPLETE, status="complete", reason=""),  # trained
            _baseline("c", reason="diverged: loss is nan"),  # would diverge again
            _baseline("d", reason="out of GPU memory (fewer trials per card...): CUDA out of"),
            *[_baseline("e", reason="RuntimeError: boom")] * MAX_BASELINE_TRIES,  # tried enough
            _baseline("f", status="duplicate", reason="same architecture as trial 0"),
        ]
    )
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"plan": "g"}))  # searched
    assert requeue_failed_baselines(study) == ["a"]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs for t in waiting] == [{"baseline": True, "plan": "a", "plan_name": "A"}]
    assert requeue_failed_baselines(study) == []  # queued now: it holds the slot
