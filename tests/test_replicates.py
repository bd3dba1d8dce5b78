"""Issue 22: the seed-noise yardstick, the stopping margin it gives, replicate runs (a baseline's
seeds, the confirmation on fresh seeds) and the Holm-corrected verdict on plan means."""

from __future__ import annotations

import math
import pathlib
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from optuna.trial import TrialState

import nas
from nas.config import save_study_config
from nas.early_stop import StopRule, decide
from nas.noise import seed_sd
from nas.optuna_backend import run_study
from nas.replicates import Run, confirm_set, judge, mean_curves, plan_rows, yardstick
from nas.report import report_data, write_report
from nas.report.results import trial_rows
from nas.report.text import noise_line
from nas.report.verdict import claims, comparisons, dominance_table, verdict
from nas.schema import replicate_counts, status_counts
from nas.study import open_existing
from tests import REPO
from tests.studies import smoke_cfg

# --- the yardstick ------------------------------------------------------------------------------


def test_the_yardstick_pools_the_seed_variance_of_every_plan_at_each_epoch():
    groups = [
        [[0.30, 0.50], [0.34, 0.52]],  # plan A, two seeds: deviations 0.02, 0.01 from the means
        [[0.20, 0.40, 0.60], [0.26, 0.40, 0.64], [0.23]],  # plan B: the third seed stopped early
    ]
    sd = seed_sd(groups)
    # epoch 1: A (0.02^2 * 2) + B (0.03^2 * 2 + 0) over 1 + 2 degrees of freedom
    assert sd[0] == pytest.approx(math.sqrt((2 * 0.02**2 + 2 * 0.03**2) / 3))
    assert sd[1] == pytest.approx(math.sqrt((2 * 0.01**2 + 0.0) / 2))
    assert sd[2] == pytest.approx(math.sqrt(2 * 0.02**2 / 1))  # only B's two seeds reached it
    assert seed_sd([[[0.5, 0.6]]]) == [None, None]  # one seed: no yardstick
    runs = [Run(0, "a", (0.30, 0.50), 10), Run(1, "a", (0.34, 0.52), 10), Run(2, "b", (0.4,), 9)]
    assert yardstick(runs) == pytest.approx(seed_sd([[[0.30, 0.50], [0.34, 0.52]]]))
    assert mean_curves(runs) == [(pytest.approx([0.32, 0.51]), 10), ([0.4], 9)]


def test_the_stopping_margin_is_z_seed_sds_of_a_difference_once_a_seed_pair_reached_the_rung():
    rule = StopRule(max_epochs=8, min_epochs=2, eta=2, min_trials=2, val_images=5000)
    leader = ([0.40, 0.50], 100)
    behind = [0.37, 0.47]  # 3 points behind the leader at rung 2, as large
    binomial = rule.noise_margin(0.47)  # about 1 point: the rule of old stops it
    assert binomial == pytest.approx(math.sqrt(2 * 0.47 * 0.53 / 5000))
    assert decide(behind, 100, [leader], rule).stop
    # a seed SD of 2.5 points at epoch 2: margin 1 * sqrt(2) * 2.5 = 3.5 points > 3: it goes on
    noise = [0.05, 0.025]
    assert rule.noise_margin(0.47, 0.025) == pytest.approx(math.sqrt(2) * 0.025)
    assert not decide(behind, 100, [leader], rule, noise=noise).stop
    # z = 0.5 halves it to 1.8 points: stopped, and the reason says the margin came from seeds
    half = StopRule(max_epochs=8, min_epochs=2, eta=2, min_trials=2, z=0.5, val_images=5000)
    decision = decide(behind, 100, [leader], half, noise=noise)
    assert decision.stop and "seed noise" in decision.reason
    # no seed pair has reached epoch 2 yet: the binomial margin applies
    assert decide(behind, 100, [leader], rule, noise=[0.05]).stop
    # a fixed-plan run (baseline, replicate) is never stopped, whatever it trails by
    runs = [Run(0, "lead", (0.40, 0.50), 100), Run(1, "lead", (0.40, 0.50), 100)]
    assert not judge(2, "b", [0.10, 0.10], 100, True, runs, rule).stop
    assert judge(2, "b", [0.10, 0.10], 100, False, runs, rule).stop
    with pytest.raises(ValueError, match="z must be a finite number >= 0"):
        StopRule(max_epochs=8, z=-1)


# --- the verdict on plan means, Holm-corrected ------------------------------------------------


def _row(t, plan, params, acc, baseline=False, n=5000, **extra):
    se = math.sqrt(acc * (1 - acc) / n)
    return {
        "trial": t,
        "state": "complete",
        "status": "complete",
        "plan": plan,
        "plan_name": plan,
        "shared": plan.startswith("S") or ":" in plan,
        "params": params,
        "epochs": 8,
        "val_acc": acc,
        "val_se": se,
        "val_images": n,
        "baseline": baseline,
        "curve": [acc],
        "seed": 0,
        "replicate_of": None,
    } | extra


def test_twenty_equal_plans_make_no_claim_that_one_lucky_plan_would_make_alone():
    se = math.sqrt(0.55 * 0.45 / 5000)  # 0.70 points
    diff_se = math.sqrt(2) * se
    base = _row(0, "WRN-22-1", 300_000, 0.55, baseline=True)
    # 19 plans within the noise, and one 2.3 SE of the difference ahead: p = 0.011, which a
    # single uncorrected 2-SE test calls a win; Holm over 20 asks for p <= 0.025 / 20
    lucky = _row(1, "22-1:1/1/1", 150_000, 0.55 + 2.3 * diff_se)
    equal = [_row(2 + i, f"22-1:{i}", 150_000, 0.55 + (i % 5 - 2) * 0.3 * se) for i in range(19)]
    rows = [base, lucky, *equal]
    assert len(comparisons(rows)) == 20
    assert claims(rows) == set()
    assert dominance_table(rows)[0].dominated_by == []
    assert verdict(rows).sentence.startswith("Sharing did not pay here")
    # alone, the lucky plan's claim stands: the correction is what removed it
    assert claims([base, lucky]) == {(1, 0, None)}
    # a plan far ahead (6 SE) survives the correction among the 20
    strong = _row(1, "22-1:1/1/1", 150_000, 0.55 + 6 * diff_se)
    assert claims([base, strong, *equal]) == {(1, 0, None)}
    assert verdict([base, strong, *equal]).sentence.startswith("Sharing paid")


def test_a_plan_is_judged_on_the_mean_of_its_seeds_with_an_se_from_them():
    rows = [
        _row(0, "WRN-22-1", 300_000, 0.56, baseline=True),
        _row(1, "WRN-22-1", 300_000, 0.54, baseline=True, replicate_of=0, seed=1),
        _row(2, "22-1:1/1/1", 150_000, 0.60),  # lucky first seed
        _row(3, "22-1:1/1/1", 150_000, 0.55, replicate_of=2, seed=1),
        _row(4, "22-1:1/1/1", 150_000, 0.56, replicate_of=2, seed=2),
        _row(5, "22-1:2/2/2", 200_000, 0.40, state="pruned", status="pruned"),
    ]
    plans = plan_rows(rows)
    assert [r["trial"] for r in plans] == [0, 2, 5]  # replicates merged into their original
    base, searched = plans[0], plans[1]
    assert searched["val_acc"] == pytest.approx(0.57) and searched["single_val_acc"] == 0.60
    assert [s["seed"] for s in searched["seeds"]] == [0, 1, 2]
    # pooled seed SD: baseline (0.01^2 * 2) + searched (0.03^2 + 0.02^2 + 0.01^2) over 1 + 2
    sd = math.sqrt((2 * 0.01**2 + 0.03**2 + 0.02**2 + 0.01**2) / 3)
    assert searched["seed_sd"] == pytest.approx(sd)
    binom = math.sqrt(0.57 * 0.43 / 5000)
    assert searched["val_se"] == pytest.approx(math.sqrt(sd**2 / 3 + binom**2))
    assert base["val_acc"] == pytest.approx(0.55) and base["n_runs"] == 2
    assert plan_rows(plans) == plans  # merging twice changes nothing
    # its first seed alone (0.60 against 0.56) looked like a win; the mean does not hold it
    v = verdict(rows)
    assert [len(e.dominated_by) for e in v.table] == [0]
    assert len(v.searched) == 1 and v.searched[0]["n_runs"] == 3


# --- replicates in a real study -----------------------------------------------------------------


def _cfg(name, **kw):
    return smoke_cfg(name, **({"early_stopping": {"enabled": False}} | kw))


def _runs_by_plan(study) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        out.setdefault(t.user_attrs["plan"], []).append(t.user_attrs["seed"])
    return {p: sorted(s) for p, s in out.items()}


@pytest.mark.slow
def test_replicates_are_never_new_architectures_nor_sampler_proposals(tmp_path):
    study = run_study(_cfg("r", confirm_seeds=1), tmp_path / "r")
    trials = study.get_trials()
    counts, reps = status_counts(trials), replicate_counts(trials)
    assert counts["complete"] == 3 and sum(counts.values()) == 3  # n_trials architectures
    assert reps["complete"] >= 2  # the baseline's second seed, and at least the front confirmed
    replicates = [t for t in trials if t.user_attrs.get("replicate_of") is not None]
    for t in replicates:
        original = trials[t.user_attrs["replicate_of"]]
        assert t.user_attrs["plan"] == original.user_attrs["plan"]
        assert t.user_attrs["seed"] != original.user_attrs["seed"]
        assert t.params == {}  # asked the sampler nothing: never told to it as a proposal
        assert t.user_attrs.get("status") == "complete"  # and never skipped as a duplicate
    assert "proposal" not in replicates[0].user_attrs
    # one architecture, one row, whatever its runs
    plans = plan_rows(trial_rows(study))
    assert len({r["plan"] for r in plans}) == len(plans) == 3
    confirmed = study.user_attrs["confirmation"]
    for plan in confirmed:
        assert set(_runs_by_plan(study)[plan]) >= {0, 1}
    # the report: one point per architecture, every run in trials.csv with its role
    data = report_data(tmp_path / "r")
    assert len(data.rows) == 3 and len(data.runs) == len(trials)
    assert all(len(r["seeds"]) == r["n_runs"] for r in data.front)
    assert any(r["n_runs"] > 1 for r in data.rows)
    assert "replicate run(s)" in noise_line(data) and "seed SD" in noise_line(data)
    write_report(tmp_path / "r")
    table = pd.read_csv(tmp_path / "r" / "report" / "trials.csv")
    assert len(table) == len(trials)
    assert set(table["role"]) == {"baseline", "searched", "replicate"}
    assert sorted(table["replicate_of"].dropna().astype(int)) == sorted(
        t.user_attrs["replicate_of"] for t in replicates
    )
    # the same table for a notebook: each run's own accuracy, and its architecture's mean
    frame = nas.trials_dataframe(tmp_path / "r")
    assert list(frame.columns[:4]) == ["trial", "role", "replicate_of", "plan"]
    assert list(frame["trial"]) == list(table["trial"]) and len(frame) == len(trials)
    for _plan, runs in frame[frame["status"] == "complete"].groupby("plan"):
        assert runs["plan_val_acc"].nunique() == 1
        assert runs["plan_val_acc"].iloc[0] == pytest.approx(runs["val_acc"].mean())
        assert (runs["n_runs"] == len(runs)).all()
    # a resume queues nothing more and trains nothing again
    again = run_study(_cfg("r", confirm_seeds=1), tmp_path / "r")
    assert len(again.get_trials()) == len(trials)


def _mid_replicate(folder: pathlib.Path) -> bool:
    try:
        _, study = open_existing(folder)
    except Exception:
        return False
    return any(
        t.state == TrialState.RUNNING
        and t.user_attrs.get("replicate_of") is not None
        and "confirmation" in study.user_attrs
        and len(t.user_attrs.get("curve") or []) >= 1
        for t in study.get_trials(deepcopy=False)
    )


@pytest.mark.slow
def test_a_confirmation_killed_mid_run_resumes_and_trains_each_seed_once(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    cfg = _cfg("c", recipe={"epochs": 6}, confirm_seeds=2)
    save_study_config(cfg, folder)
    args = [sys.executable, "search.py", "study", "c", "--results-dir", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    try:  # the search is done and a confirmation run has trained an epoch: kill it there
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if _mid_replicate(folder):
                break
        assert proc.poll() is None, "the study ended before it could be killed mid-confirmation"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _, study = open_existing(folder)
    confirmed = list(study.user_attrs["confirmation"])
    killed = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert len(killed) == 1 and killed[0].user_attrs["replicate_of"] is not None
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    _, study = open_existing(folder)
    assert study.user_attrs["confirmation"] == confirmed  # chosen once, not again on resume
    runs = _runs_by_plan(study)
    for plan in confirmed:  # seeds 0, 1, 2, each trained once
        assert runs[plan] == [0, 1, 2], (plan, runs[plan])
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [killed[0].number]
    assert failed[0].user_attrs["reason"].endswith("died")
    assert status_counts(study.get_trials())["complete"] == 3


def test_a_failed_original_leaves_one_row_for_its_plan_led_by_its_retry():
    # trial 0 (a baseline) died; its second seed (trial 1) completed before the baseline was
    # queued again as trial 2: one architecture, one row, led by the retry, both runs in it
    rows = [
        _row(0, "WRN-22-1", 300_000, 0.5, baseline=True, state="fail", status="failed"),
        _row(1, "WRN-22-1", 300_000, 0.54, baseline=True, replicate_of=0, seed=1),
        _row(2, "WRN-22-1", 300_000, 0.56, baseline=True),
        _row(3, "22-1:1/1/1", 150_000, 0.55),
    ]
    rows[0]["val_acc"] = None
    plans = plan_rows(rows)
    assert [r["trial"] for r in plans] == [0, 2, 3]  # the failed try stays, as it is
    assert plans[1]["n_runs"] == 2 and plans[1]["val_acc"] == pytest.approx(0.55)
    assert [s["trial"] for s in plans[1]["seeds"]] == [1, 2]
    assert [r["plan"] for r in confirm_set(rows)].count("WRN-22-1") <= 1


def _near_front() -> list[dict]:
    """Front A (100k, 60%) and D (400k, 66%); B, C, E trail A or D by 0.3, 1.0 and 2.0 points
    (an SE of about 1.1 points each at 2,000 images: 0.2, 0.65 and 1.3 SE of the difference)."""
    return [
        _row(0, "A", 100_000, 0.60, n=2000),
        _row(1, "B", 200_000, 0.597, n=2000),
        _row(2, "C", 300_000, 0.59, n=2000),
        _row(3, "D", 400_000, 0.66, n=2000),
        _row(4, "E", 500_000, 0.64, n=2000),
    ]


def test_a_capped_confirmation_keeps_the_front_then_the_plans_nearest_to_it():
    rows = _near_front() + [_row(5, "F", 600_000, 0.50, n=2000)]  # F: far behind, never confirmed
    everything = [r["plan"] for r in confirm_set(rows)]
    assert everything == ["A", "B", "C", "D", "E"]
    assert [r["plan"] for r in confirm_set(rows, cap=3)] == ["A", "B", "D"]  # B is nearest
    assert [r["plan"] for r in confirm_set(rows, cap=4)] == ["A", "B", "C", "D"]
    assert [r["plan"] for r in confirm_set(rows, cap=1)] == ["A", "D"]  # the front, whole
    assert [r["plan"] for r in confirm_set(rows, cap=9)] == everything
    # C, a baseline: kept whatever the cap, the yardstick of the verdict
    rows[2]["baseline"] = True
    assert [r["plan"] for r in confirm_set(rows, cap=3)] == ["A", "C", "D"]
    assert [r["plan"] for r in confirm_set(rows, cap=4)] == ["A", "B", "C", "D"]


def test_the_study_confirms_at_most_confirm_max_plans():
    import optuna

    from nas.replicates import top_up

    rows = _near_front()
    for cap, want in ((3, ["A", "B", "D"]), (0, ["A", "B", "C", "D", "E"])):
        study = optuna.create_study()
        for r in rows:
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.COMPLETE,
                    value=r["val_acc"],
                    user_attrs={"plan": r["plan"], "plan_name": r["plan"], "seed": 0},
                )
            )
        cfg = _cfg("m", confirm_seeds=1, baseline_seeds=1, confirm_max=cap)
        queued = top_up(study, cfg, rows_of=lambda _s: rows, search_over=True)
        assert study.user_attrs["confirmation"] == want and queued == len(want)
