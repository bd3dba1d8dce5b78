"""nas.schema: a trial's role and status in the study's one vocabulary, and how they are counted."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from optuna.trial import TrialState

from nas.schema import (
    counts_text,
    plan_failure,
    replicate_counts,
    role_of,
    status_counts,
    status_of,
)


def _trial(state: str, **attrs) -> SimpleNamespace:
    return SimpleNamespace(state=TrialState[state], user_attrs=attrs)


def test_a_trial_has_one_role():
    assert role_of({"replicate_of": 0, "baseline": True}) == "replicate"  # a baseline's seed
    assert role_of({"baseline": True}) == "baseline"
    assert role_of({"learned": True}) == "learned"
    assert role_of({}) == "searched"


def test_status_and_counts_leave_replicates_to_their_own_count():
    trials = [
        _trial("COMPLETE", status="complete"),
        _trial("PRUNED"),
        _trial("FAIL", status="duplicate"),
        _trial("FAIL"),
        _trial("RUNNING"),
        _trial("COMPLETE", status="complete", replicate_of=0),
    ]
    assert [status_of(t) for t in trials] == [
        "complete",
        "pruned",
        "duplicate",
        "failed",
        "running",
        "complete",
    ]
    counts = status_counts(trials)
    assert counts == Counter(complete=1, pruned=1, duplicate=1, failed=1, running=1)
    assert replicate_counts(trials) == Counter(complete=1)
    assert counts_text(counts).startswith("1 complete, 1 pruned")
    assert counts_text(Counter()) == "no trials"


def test_only_a_plans_own_failures_are_never_retried():
    assert plan_failure("diverged at epoch 2") == "diverged"
    assert plan_failure("out of GPU memory (batch 128)") == "out of memory"
    assert plan_failure("worker died") is None and plan_failure(None) is None
