"""nas.report.verdict ("does sharing pay?") on hand-made studies whose answers were worked out by hand.

Every accuracy is measured on N = 2,500 validation images, so the binomial standard errors are
round: sqrt(p (1 - p) / N) = 1.0 point at 50%, 0.8 at 80% and 20%, 0.6 at 90%.

The study (params chosen as powers of ten so that log10 is an integer):

    trial  kind                      params  val acc
      0    baseline WRN-16-1 (plain)  1e6     0.50   dominated by 5, 7, 4 (all far beyond the noise)
      1    baseline SWRN-16-1-2       1e5     0.80   5 is 0.82 at 1e5: +2.0 points, but 2 SE of the
                                                     difference is 2 * hypot(0.800, 0.768) = 2.218: none
      2    baseline WRN-10-1 (plain)  1e4     0.70   only 5 and 6 are more accurate, both bigger: none
      3    baseline SWRN-22-1-2       1e5     pruned at epoch 3: not compared
      4    searched                   1e6     0.60
      5    searched                   1e5     0.82
      6    searched                   1e7     0.95   the largest model: reference = 1e8, log10 = 8
      7    searched                   1e3     0.68
      8    searched, duplicate of 5   1e5     0.82   left out (a repeat)
      9    searched, pruned           1e4     best seen 0.99, left out (not trained in full)

Searched front 7, 5, 6 (4 is dominated by 5): hypervolume in (acc, log10 params) up to (0, 8) =
0.68 * (5 - 3) + 0.82 * (7 - 5) + 0.95 * (8 - 7) = 1.36 + 1.64 + 0.95 = 3.95.
Baseline front 2, 1 (0 is dominated by 1): 0.70 * (5 - 4) + 0.80 * (8 - 5) = 0.70 + 2.40 = 3.10.
Front of all trials: 7, 2, 5, 6 (1 ties 5 in params and loses); 7 (0.68) and 2 (0.70) differ by
2.0 points < 2 * hypot(0.933, 0.917) = 2.616: tied; the other neighbours are far apart.
"""

import html
import math

import numpy as np
import pytest
from optuna.trial import TrialState

from nas.noise import binomial_se
from nas.report import report_data, terminal_summary, write_report
from nas.report.results import HV_REFERENCE_FACTOR
from nas.report.verdict import (
    REQUIRED_KEYS,
    accuracy_text,
    baseline_rows,
    closest,
    comparisons,
    dominance_table,
    fewer_text,
    needed_z,
    searched_rows,
    ties,
    uniform_vs_plain,
    verdict,
)
from nas.schema import REPORT_DIR
from tests.browser import open_page
from tests.test_report import _attrs, _made_study, _trial

N = 2500
# trial: (plan, params, val acc or best seen, state, baseline, extra attrs)
STUDY = {
    0: ("WRN-16-1", 10**6, 0.50, "complete", True, {}),
    1: ("SWRN-16-1-2", 10**5, 0.80, "complete", True, {}),
    2: ("WRN-10-1", 10**4, 0.70, "complete", True, {}),
    3: ("SWRN-22-1-2", 10**5, 0.30, "pruned", True, {}),
    4: ("16-1:2x2/2/2", 10**6, 0.60, "complete", False, {}),
    5: ("22-1:4x2/2x1,2/4x1", 10**5, 0.82, "complete", False, {}),
    6: ("22-1:4/4x2/4", 10**7, 0.95, "complete", False, {}),
    7: ("16-1:2/2x1/2x2", 10**3, 0.68, "complete", False, {}),
    8: ("22-1:4x2/2x1,2/4x1", 10**5, 0.82, "duplicate", False, {"duplicate_of": 5}),
    9: ("16-1:2/2/2x1", 10**4, 0.99, "pruned", False, {}),
}
SENTENCE = (
    "Sharing paid: searched plans beat 1 of 3 baselines trained in full beyond the noise at no more "
    "parameters (1 of 2 plain WRNs and 0 of 1 uniform SWRN; best: trial 5, 82.0% ± 0.8 vs WRN-16-1's "
    "50.0% ± 1.0 with 10x fewer parameters); searched-front hypervolume 3.950 vs the baselines' 3.100."
)


def _row(
    trial: int,
    name: str,
    params: int | None,
    acc: float | None,
    state: str = "complete",
    baseline: bool = False,
    n: int | None = N,
    **extra,
) -> dict:
    """A row as nas.report.results.trial_rows makes it (the keys nas.report.verdict reads, and a few more)."""
    done = state == "complete"
    row = {
        "trial": trial,
        "state": "complete" if done else state,
        "status": state,
        "plan": name,
        "plan_name": name,
        "shared": not name.startswith("WRN"),
        "params": params,
        "epochs": 10 if done else 3,
        "val_acc": acc if done else None,
        "val_images": n,
        "baseline": baseline,
        "duplicate_of": None,
    }
    row["val_se"] = binomial_se(acc, n) if done else None
    return row | extra


def _rows(trials: dict = STUDY) -> list[dict]:
    out = []
    for t, (plan, params, acc, state, baseline, extra) in trials.items():
        status = {"status": "duplicate"} if state == "duplicate" else {}
        out.append(
            _row(
                t,
                plan,
                params,
                acc,
                "complete" if state == "duplicate" else state,
                baseline,
                **status,
            )
            | extra
        )
    return out


def _by_trial(table: list[dict]) -> list[tuple]:
    return [
        (
            e.baseline["trial"],
            None if e.dominated_by is None else [s["trial"] for s in e.dominated_by],
            e.note,
        )
        for e in table
    ]


# --- pure: rows made by hand ------------------------------------------------------------------


def test_rows_split_into_searched_and_baselines_without_repeats_or_unfinished_trials():
    rows = _rows()
    assert [r["trial"] for r in searched_rows(rows)] == [4, 5, 6, 7]
    assert [r["trial"] for r in baseline_rows(rows)] == [0, 1, 2]


def test_dominance_table_worked_out_by_hand():
    assert _by_trial(dominance_table(_rows())) == [
        (2, [], ""),  # 5 and 6 are more accurate but bigger
        (1, [], ""),  # 5: +2.0 points at the same size, within 2.218 points of noise
        (0, [5, 7, 4], ""),  # most accurate first; 4 has exactly as many parameters
        (3, None, "stopped early at epoch 3: not compared"),
    ]


@pytest.mark.parametrize(("searched_acc", "dominates"), [(0.825, True), (0.82, False)])
def test_dominance_needs_more_than_two_standard_errors_of_the_difference(searched_acc, dominates):
    # at 0.825: 2 * hypot(0.800, 0.760) = 2.207 points < 2.5; at 0.82: 2.218 > 2.0
    rows = [
        _row(0, "SWRN-16-1-2", 10**5, 0.80, baseline=True),
        _row(1, "16-1:2x2/2/2", 10**5, searched_acc),
    ]
    assert _by_trial(dominance_table(rows)) == [(0, [1] if dominates else [], "")]


def test_without_a_validation_set_size_any_margin_counts():
    rows = [
        _row(0, "SWRN-16-1-2", 10**5, 0.80, baseline=True, n=None),
        _row(1, "x", 10**5, 0.801, n=None),
    ]
    assert _by_trial(dominance_table(rows)) == [(0, [1], "")]
    assert ties([rows[0] | {"params": 10**4}, rows[1]]) == [False, False]


def test_baselines_not_trained_in_full_say_why():
    rows = [
        _row(0, "WRN-16-1", 10**6, None, "pruned", True, status="over-budget"),
        _row(1, "WRN-10-1", 10**4, None, "fail", True, status="failed"),
        _row(2, "SWRN-16-1-2", 10**5, None, "running", True, status="running"),
    ]
    assert _by_trial(dominance_table(rows)) == [
        (1, None, "failed: not compared"),
        (2, None, "still training: not compared yet"),
        (0, None, "over the parameter budget, not trained: not compared"),
    ]


def test_ties_between_front_neighbours():
    # n = 2500: 0.80 / 0.82 differ by 2.0 < 2.218 points (tied); 0.82 / 0.90 by 8.0 > 1.950 (not);
    # 0.900 / 0.905 by 0.5 < 1.682 (tied); the last member has no next one
    front = [
        _row(i, f"p{i}", 10 ** (3 + i), acc) for i, acc in enumerate([0.80, 0.82, 0.90, 0.905])
    ]
    assert ties(front) == [True, False, True, False]
    unknown = [r | {"val_images": None} for r in front]
    assert ties(unknown) == [
        False,
        False,
        False,
        False,
    ]  # no noise estimate: every difference is real
    assert ties([]) == [] and ties(front[:1]) == [False]


def test_the_verdict_numbers_and_sentence():
    v = verdict(_rows())
    assert [r["trial"] for r in v.searched_front] == [7, 5, 6]
    assert [r["trial"] for r in v.baseline_front] == [2, 1]
    assert v.reference_params == HV_REFERENCE_FACTOR * 10**7 == 10**8
    assert v.searched_hypervolume == pytest.approx(3.95)
    assert v.baseline_hypervolume == pytest.approx(3.10)
    assert v.counts == {
        "baselines": 4,
        "compared": 3,
        "not_compared": 1,
        "beaten": 1,
        "searched": 4,
        "at_epoch": 0,
    }
    assert v.sentence == SENTENCE


def test_a_sentence_against_us_is_as_plain():
    trials = {
        t: STUDY[t] for t in (0, 1, 2, 6)
    }  # only the big searched plan: it beats nobody at its size
    v = verdict(_rows(trials))
    # one comparison the verdict makes (the uniform SWRN against the larger plain WRN); the
    # baselines' binomial SEs are 0.8 to 1.0 points
    assert v.comparisons == 1
    assert v.sentence == (
        "Sharing did not pay here: no searched plan beat any of the 3 baselines beyond the noise "
        "(one-sided z-tests, Holm-corrected over 1 comparison at 2.5%; a baseline's SE about "
        "0.8 to 1.0 points) at equal or fewer parameters; searched-front hypervolume 0.950 vs "
        "the baselines' 3.100."
    )


def test_sentences_when_there_is_nothing_to_compare():
    no_baselines = verdict([_row(0, "16-1:2x2/2/2", 10**5, 0.8)])
    assert no_baselines.sentence == (
        "Sharing cannot be judged here: there are no baselines in this study "
        "(--baselines none), so there is nothing to compare against."
    )
    assert no_baselines.table == [] and no_baselines.baseline_hypervolume == 0.0
    stopped = verdict([_row(0, "WRN-16-1", 10**6, None, "pruned", True), _row(1, "x", 10**5, 0.8)])
    assert stopped.sentence == (
        "Sharing cannot be judged yet: none of the 1 baseline(s) was trained in full "
        "(WRN-16-1: stopped early at epoch 3: not compared), and a fully trained plan is "
        "not compared with one that was not."
    )
    unsearched = verdict(
        [
            _row(0, "WRN-16-1", 10**6, 0.5, baseline=True),
            _row(1, "WRN-10-1", 10**4, 0.4, baseline=True),
        ]
    )
    assert unsearched.sentence == (
        "Sharing cannot be judged yet: no searched plan has finished training, so "
        "there is nothing to set against the 2 baselines."
    )


def test_one_baseline_reads_as_the_only_baseline():
    v = verdict([_row(0, "WRN-16-1", 10**6, 0.5, baseline=True), _row(1, "x", 10**6, 0.6)])
    assert v.sentence.startswith(
        "Sharing paid: searched plans beat the only baseline beyond the noise at no "
        "more parameters (best: trial 1, 60.0% ± 1.0 vs WRN-16-1's 50.0% ± 1.0 with "
        "as many parameters); "
    )


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="rows must be a list of trial rows"):
        verdict("trials.csv")
    with pytest.raises(
        ValueError, match=r"rows\[1\] must be a trial row .* but it lacks val_images, baseline\."
    ):
        dominance_table(
            [
                _row(0, "x", 10, 0.5),
                {k: 0 for k in REQUIRED_KEYS if k not in ("baseline", "val_images")},
            ]
        )
    with pytest.raises(
        ValueError, match=r"front must be sorted by params ascending, but got \[100, 10\]"
    ):
        ties([_row(0, "x", 100, 0.6), _row(1, "y", 10, 0.5)])
    with pytest.raises(
        ValueError, match=r"front must hold completed trials .* but got trials \[1\]"
    ):
        ties([_row(0, "x", 10, 0.6), _row(1, "y", 100, None, "pruned")])


def test_fewer_text_and_its_edges():
    assert fewer_text(100, 100) == "as many parameters"
    assert (
        fewer_text(62, 100) == "38% fewer parameters"
        and fewer_text(996, 1000) == "0.4% fewer parameters"
    )
    assert (
        fewer_text(10, 100) == "10x fewer parameters"
        and fewer_text(1, 1000) == "1,000x fewer parameters"
    )
    for small, big in ((101, 100), (0, 100)):
        with pytest.raises(ValueError, match=f"small={small}, big={big}"):
            fewer_text(small, big)


def test_accuracy_text():
    assert accuracy_text(0.5, 0.01) == "50.00% ± 1.00"
    assert accuracy_text(0.8234, 0.0076, 1) == "82.3% ± 0.8"
    assert accuracy_text(0.5, 0.0) == accuracy_text(0.5, None) == "50.00%"


# --- a real study: journal storage, report page and terminal -----------------------------------


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verdict") / "verdict"
    states = {
        "complete": TrialState.COMPLETE,
        "duplicate": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
    }
    trials = []
    for plan, params, acc, state, baseline, extra in STUDY.values():
        curve = [acc / 2, acc / 1.5, acc] if state == "pruned" else [acc / 2, acc]
        attrs = _attrs(plan, params, state, curve, 10.0, val_images=N, **extra)
        attrs |= (
            {"baseline": True} if baseline else {}
        )  # as the study marks its baselines; others lack the key
        values = [acc, params] if states[state] == TrialState.COMPLETE else None
        trials.append(_trial(states[state], attrs, values))
    _made_study(folder, "verdict", trials)
    write_report(folder)
    return folder


# In the journal study the trials have curves: stopped ones [acc/2, acc/1.5, acc], finished ones
# [acc/2, acc]. So baseline 3 (SWRN-22-1-2, stopped at epoch 3 with 0.30) is compared at epoch 3
# with the one searched plan that reached it, trial 9 (0.99 there, 10,000 params): beaten.
STOPPED_NOTE = "stopped by the rule at epoch 3: compared at epoch 3 with the 1 searched plan(s) that reached it"
JOURNAL_SENTENCE = (
    SENTENCE[:-1]
    + "; at the epoch where the rule stopped them, searched plans beat 1 of 1 stopped "
    "baseline(s) beyond the noise (best: trial 9, 99.0% ± 0.2 vs SWRN-22-1-2's 30.0% ± 0.9 at "
    "epoch 3 with 10x fewer parameters)."
)


def test_the_report_data_of_a_real_study(study_folder):
    data = report_data(study_folder)
    v = data.verdict
    assert _by_trial(v.table) == [
        (2, [], ""),
        (1, [], ""),
        (0, [5, 7, 4], ""),
        (3, [9], STOPPED_NOTE),
    ]
    assert v.reference_params == data.reference.params == 10**8
    assert v.sentence == JOURNAL_SENTENCE
    assert [(r["trial"], r["tied_with_next"]) for r in data.front] == [
        (7, True),
        (2, False),
        (5, False),
        (6, False),
    ]
    rows = {r["trial"]: r for r in data.rows}
    assert rows[0]["val_se"] == pytest.approx(0.01) and rows[1]["val_se"] == pytest.approx(0.008)
    assert [t for t, r in rows.items() if r["baseline"]] == [0, 1, 2, 3]


def test_terminal_summary_ends_with_the_sentence(study_folder):
    page = study_folder / REPORT_DIR / "index.html"
    lines = terminal_summary(report_data(study_folder), page).splitlines()
    assert lines[-1] == JOURNAL_SENTENCE and lines[-2] == f"report: {page}"
    assert lines[-3].startswith("Among the fully trained baselines, ")
    assert "  WRN-10-1 (trial 2, 10,000 params, 70.00% ± 0.92): none" in lines
    assert (
        "  WRN-16-1 (trial 0, 1,000,000 params, 50.00% ± 1.00): trial 5 (82.00% ± 0.77, +32.00 points, "
        "100,000 params), trial 7 (68.00% ± 0.93, +18.00 points, 1,000 params), trial 4 (60.00% ± 0.98, "
        "+10.00 points, 1,000,000 params)"
    ) in lines
    assert (
        "  SWRN-22-1-2 (trial 3, 100,000 params, 30.00% ± 0.92 at epoch 3): trial 9 (99.00% ± 0.20, "
        "+69.00 points, 10,000 params)"
    ) in lines


def test_the_page_has_the_section_table_badges_and_ties(study_folder):
    page = (study_folder / REPORT_DIR / "index.html").read_text()
    section = page[page.index('<section id="sharing-section">') :]
    section = section[: section.index("</section>")]
    assert (
        "<h2>Does sharing pay?</h2>" in section
        and JOURNAL_SENTENCE in html.unescape(section)  # any escaping of its apostrophes
    )
    assert (
        'id="sharing"' in section and section.count("<tr>") == 1 + 4
    )  # header + one row per baseline
    assert "<b>+32.00 points</b>" in section and "(10x fewer parameters)" in section
    assert section.count("<td>none</td>") == 2
    assert STOPPED_NOTE in section and "at epoch 3</small>" in section
    frontier = page[
        page.index("<h2>Frontier: what to retrain</h2>") : page.index(
            '<section id="sharing-section">'
        )
    ]
    assert (
        frontier.count("tied with next (within noise)") == 1
        and frontier.count(">baseline</span>") == 1
    )
    assert "68.00% ± 0.93" in frontier


def test_trials_csv_has_the_new_columns(study_folder):
    import pandas as pd

    trials = pd.read_csv(study_folder / REPORT_DIR / "trials.csv")
    assert {"baseline", "val_images", "val_se", "tied_with_next"} <= set(trials.columns)
    assert list(trials["baseline"]) == [True] * 4 + [False] * 6
    np.testing.assert_allclose(trials.loc[[0, 1], "val_se"], [0.01, 0.008])


SHARING_TRACES = """
return document.getElementById('sharing')._fullData.map(t => ({meta: t.meta, name: t.name,
  x: Array.from(t.x), err: t.error_y.visible ? Array.from(t.error_y.array) : null}));
"""


@pytest.mark.browser
def test_the_page_draws_both_fronts_with_error_bars(browser, study_folder):
    counts, errors, _ = open_page(browser, study_folder / REPORT_DIR / "index.html")
    assert errors == []
    assert (
        counts["data"] == 10 and counts["drawn"] == 10 + 1
    )  # baselines are marked, not drawn twice
    assert (
        counts["plots"] == 4
    )  # scatter, sharing, hypervolume, curves; no similarity (none recorded)
    traces = {t["meta"]: t for t in browser.execute_script(SHARING_TRACES)}
    assert set(traces) == {"searched", "searched-front", "baseline", "baseline-front"}
    assert traces["searched-front"]["x"] == [1e3, 1e5, 1e7] and traces["baseline-front"]["x"] == [
        1e4,
        1e5,
    ]
    assert traces["searched"]["x"] == [1e6] and traces["baseline"]["x"] == [1e6]
    assert traces["searched-front"]["name"] == "searched plans' front · hypervolume 3.950"
    assert traces["baseline-front"]["name"] == "baselines' front · hypervolume 3.100"
    se = [math.sqrt(p * (1 - p) / N) for p in (0.68, 0.82, 0.95)]
    np.testing.assert_allclose(traces["searched-front"]["err"], se)
    pareto_err = browser.execute_script(
        "return document.getElementById('pareto')._fullData"
        ".filter(t => t.meta === 'trial' && t.error_y.visible).length"
    )
    assert pareto_err >= 3


def test_a_baseline_stopped_early_is_compared_at_the_epoch_it_was_stopped():
    # 2,500 validation images. Baseline WRN-22-1 (272k) stopped at epoch 2 with 0.40. At epoch 2:
    # trial 1 (127k) had 0.45 (+5 points, 2 SE of the difference = 2.8 points: beyond), trial 2
    # (200k) 0.41 (+1: within), trial 3 (400k) 0.50 but bigger; trial 4 never reached epoch 2.
    def row(t, plan, params, curve, state, baseline=False):
        done = state == "complete"
        return {
            "trial": t,
            "state": state,
            "status": state,
            "plan": plan,
            "plan_name": plan,
            "shared": not baseline,
            "params": params,
            "epochs": len(curve),
            "curve": curve,
            "val_acc": max(curve) if done else None,
            "val_se": None,
            "val_images": 2500,
            "baseline": baseline,
            "duplicate_of": None,
        }

    rows = [
        row(0, "WRN-22-1", 272_282, [0.30, 0.40], "pruned", baseline=True),
        row(1, "22-1:4x1/4x1/4x1", 127_000, [0.35, 0.45, 0.55], "complete"),
        row(2, "22-1:4x2/4/4", 200_000, [0.33, 0.41], "pruned"),
        row(3, "22-1:4x3/4/4", 400_000, [0.40, 0.50, 0.60], "complete"),
        row(4, "22-1:4x1/4/4", 150_000, [0.2], "pruned"),
    ]
    (entry,) = dominance_table(rows)
    assert entry.at_epoch == 2 and entry.baseline["val_acc"] == 0.40
    assert [(s["trial"], s["val_acc"]) for s in entry.dominated_by] == [(1, 0.45)]
    assert "compared at epoch 2 with the 3 searched plan(s)" in entry.note
    v = verdict(rows)
    assert v.counts["at_epoch"] == 1 and v.counts["beaten"] == 1
    # no fully trained baseline: the answer says so first; the epoch-2 evidence comes after, as such
    assert v.sentence.startswith(
        "Sharing cannot be judged yet: none of the 1 baseline(s) was trained in full"
    )
    assert v.sentence.endswith(
        "searched plans beat 1 of 1 stopped baseline(s) beyond the noise (best: trial 1, "
        "45.0% ± 1.0 vs WRN-22-1's 40.0% ± 1.0 at epoch 2 with 53% fewer parameters)."
    )


def test_uniform_sharing_against_plain_baselines():
    def b(t, name, params, acc, shared):
        return {
            "trial": t,
            "plan": name,
            "plan_name": name,
            "shared": shared,
            "params": params,
            "val_acc": acc,
            "val_se": None,
            "val_images": 5000,
        }

    # 5,000 images: 2 SE of the difference near 56% is 2.0 points
    matched = uniform_vs_plain(
        [b(0, "SWRN-22-1-1", 127_142, 0.556, True), b(1, "WRN-28-1", 369_498, 0.570, False)]
    )
    assert matched.startswith(
        "Among the fully trained baselines, uniform sharing matches, within the noise, the "
        "plain net: SWRN-22-1-1 55.6% against WRN-28-1 57.0%, with 66% fewer parameters"
    )
    worse = uniform_vs_plain(
        [b(0, "SWRN-22-1-1", 127_142, 0.50, True), b(1, "WRN-28-1", 369_498, 0.57, False)]
    )
    assert "trails it by more than the noise" in worse
    better = uniform_vs_plain(
        [b(0, "SWRN-22-1-1", 127_142, 0.60, True), b(1, "WRN-28-1", 369_498, 0.57, False)]
    )
    assert "uniform sharing beats the plain net" in better
    assert uniform_vs_plain([b(0, "WRN-28-1", 369_498, 0.57, False)]) == ""


def test_a_negative_verdict_says_how_far_it_was_from_a_claim():
    # a searched plan 1.5 points ahead of the plain WRN with fewer parameters, on 2,500 images
    # each: SE of the difference hypot(0.92, 0.96) = 1.33 points, z 1.13; the plan is also
    # compared with nothing else, so the family is that test and the SWRN against the WRN
    rows = [
        _row(0, "WRN-16-1", 10**6, 0.62, baseline=True),
        _row(1, "SWRN-16-1-1", 10**4, 0.55, baseline=True),
        _row(2, "16-1:2x2/2/2", 10**5, 0.635),
        _row(3, "16-1:2/2/2x1", 10**5 + 1, 0.60),
    ]
    v = verdict(rows)
    assert v.comparisons == 3
    assert v.closest is not None and v.closest.better["trial"] == 2
    assert v.closest.worse["trial"] == 0
    se = math.hypot(binomial_se(0.635, N), binomial_se(0.62, N))
    assert v.closest.z == pytest.approx(0.015 / se)
    z1 = needed_z(3)
    assert z1 == pytest.approx(2.394, abs=1e-3)  # Phi^-1(1 - 0.025 / 3)
    assert v.sentence.endswith(
        f"; the nearest to a claim: 16-1:2x2/2/2 over WRN-16-1 by 1.5 points (z {0.015 / se:.2f}), "
        f"where the first of Holm's 3 tests asks for z > {z1:.2f}, a lead of about "
        f"{100 * z1 * se:.1f} points at this noise; searched-front hypervolume "
        f"{v.searched_hypervolume:.3f} vs the baselines' {v.baseline_hypervolume:.3f}."
    )
    # a study whose searched plans face no baseline of their size says nothing of the kind
    assert closest([c for c in comparisons(rows) if c.better["baseline"]]) is None
