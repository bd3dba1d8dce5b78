"""nas.report on real studies, checked against answers worked out by hand and in a real browser.

Three studies: a tiny one trained end to end (smoke preset, generated data); a hand-made one whose
front, knee, hypervolume and layer similarity were computed by hand (trials added with
optuna.trial.create_trial into the study's real journal storage); and a fake 1,000-trial one for
the page's size and load time. Pages are opened in headless Chromium (Debian's ``chromium`` and
``chromium-driver``); those tests skip, saying why, only when the browser is not installed.
"""

import json
import math
import random
import re
import time

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState, create_trial
from PIL import Image

from nas.config import StudyConfig, save_study_config
from nas.optuna_backend import run_study
from nas.report import report_data, terminal_summary, write_report
from nas.report.results import Reference, front_rows
from nas.schema import REPORT_DIR
from nas.storage import open_storage, open_study
from softshare import build_model, parse_plan, shared_groups
from softshare.analysis import coefficient_matrices
from softshare.checkpoint import dumps
from tests.browser import open_page
from tests.studies import ONE_RUN

FILES = ("index.html", "pareto.png", "trials.csv", "pareto.csv")
R = 1 / math.sqrt(2)
# Stage-1 coefficients of trial 1 (SWRN-22-1-3: 4 layers share 3 templates), set by hand, and
# their |cos| worked out by hand: a and d are parallel (opposite signs), a and b orthogonal,
# c = a + b sits at 45 degrees from both.
HAND_COEFFICIENTS = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [-2.0, 0.0, 0.0]]
HAND_SIMILARITY = [[1, 0, R, 1], [0, 1, R, 0], [R, R, 1, R], [1, 0, R, 1]]


def _attrs(plan: str, params: int, status: str, curve=(), seconds=None, **extra) -> dict:
    p = parse_plan(plan)
    return {
        "plan": p.text,
        "plan_name": p.name,
        "shared": p.is_shared,
        "depth": p.depth,
        "width": p.width,
        "templates": p.templates_per_group(),
        "params": params,
        "macs": p.multiply_adds(),
        "curve": list(curve),
        "status": status,
        "train_seconds": seconds,
        "device": "cpu (test)",
        "seed": 0,
    } | extra


def _trial(state, attrs, values=None):
    return create_trial(state=state, values=values, user_attrs=attrs)


def _made_study(folder, name: str, trials: list, n_trials: int | None = None) -> None:
    save_study_config(
        StudyConfig(name=name, preset="smoke", n_trials=n_trials or len(trials)), folder
    )
    open_study(name, open_storage(folder)).add_trials(trials)


# The hand-made study, (accuracy, params) chosen so that log10(params) is an integer:
#   0 complete 0.60 @ 1e4 (plain)  front      5 failed, 1e5           strip
#   1 complete 0.80 @ 1e5          front knee 6 over-budget, 1e7      strip (largest model)
#   2 complete 0.70 @ 1e6          dominated  7 duplicate of 1        same point as 1, not on the front
#   3 complete 0.90 @ 1e6          front      8 running, 1e4          strip
#   4 pruned, best seen 0.50 @ 1e5            9 running, no parameter count yet: listed, not plotted
# Hypervolume in (acc, log10 params) up to (0, log10(10 * 1e7) = 8): rectangles [0, acc] x [log p, 8]:
#   after trial 0: 0.6 * 4 = 2.4; after 1: 0.8 * 3 + 0.6 * 1 = 3.0; 2 adds nothing; after 3:
#   0.9 * 2 + 0.8 * 1 + 0.6 * 1 = 3.2. Knee: normalised over the front, trial 1 sits at (2/3, 1/2),
#   the only point off the chord from (0, 1) to (1, 0).
HAND_HV = [2.4, 3.0, 3.0, 3.2, 3.2, 3.2, 3.2, 3.2, 3.2, 3.2]
SWRN = "SWRN-22-1-3"


@pytest.fixture(scope="module")
def hand_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hand") / "hand"
    C, P, F, RUN = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING
    trials = [
        _trial(C, _attrs("WRN-10-1", 10_000, "complete", [0.4, 0.6], 10.0), [0.6, 10_000]),
        _trial(C, _attrs(SWRN, 100_000, "complete", [0.5, 0.8], 20.0), [0.8, 100_000]),
        _trial(C, _attrs(SWRN, 1_000_000, "complete", [0.6, 0.7], 30.0), [0.7, 1_000_000]),
        _trial(
            C, _attrs("SWRN-16-1-2", 1_000_000, "complete", [0.7, 0.9], 40.0), [0.9, 1_000_000]
        ),
        _trial(P, _attrs(SWRN, 100_000, "pruned", [0.3, 0.5], 5.0, reason="below the rung"), None),
        _trial(F, _attrs(SWRN, 100_000, "failed", reason="RuntimeError: boom"), None),
        _trial(P, _attrs("WRN-16-1", 10_000_000, "over-budget", reason="too big"), None),
        _trial(
            C, _attrs(SWRN, 100_000, "duplicate", [0.5, 0.8], 20.0, duplicate_of=1), [0.8, 100_000]
        ),
        _trial(RUN, _attrs(SWRN, 10_000, "running", [0.2]), None),
        _trial(RUN, {}, None),
    ]
    _made_study(folder, "hand", trials, n_trials=12)
    model = build_model(SWRN)
    with torch.no_grad():
        for layer, vector in zip(shared_groups(model)[0][1], HAND_COEFFICIENTS):
            layer.coefficients.copy_(torch.tensor(vector))
    (folder / "trials" / "0001").mkdir(parents=True)
    (folder / "trials" / "0001" / "coefficients.json").write_text(
        dumps(coefficient_matrices(model))
    )
    write_report(folder)
    return folder


@pytest.fixture(scope="module")
def smoke_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smoke") / "tiny"
    cfg = StudyConfig(
        name="tiny",
        preset="smoke",
        n_trials=3,
        recipe={"epochs": 2},
        device="cpu",
        data={"synthetic_train": 64, "synthetic_test": 16, "image_size": 8},
        **ONE_RUN,
    )
    run_study(cfg, folder)
    write_report(folder)
    return folder


# --- data, files and errors --------------------------------------------------------------------


def test_front_knee_and_hypervolume_match_the_hand_computed_ones(hand_folder):
    data = report_data(hand_folder)
    assert [r["trial"] for r in data.front] == [0, 1, 3]
    assert data.knee["trial"] == 1
    assert data.reference == Reference(accuracy=0.0, params=100_000_000)
    assert [s.trial for s in data.hypervolume] == list(range(10))
    assert [s.value for s in data.hypervolume] == pytest.approx(HAND_HV)
    # training seconds add up; the duplicate re-used trial 1's result and spent nothing
    assert [s.seconds for s in data.hypervolume][-1] == pytest.approx(105.0)
    rows = {r["trial"]: r for r in data.rows}
    assert (
        rows[4]["accuracy"] == 0.5 and rows[5]["accuracy"] is None and rows[7]["accuracy"] == 0.8
    )
    assert data.running


def test_similarity_heatmap_data_is_the_hand_computed_abs_cosine(hand_folder):
    banks = report_data(hand_folder).similarity[1]
    assert [len(b["layers"]) for b in banks] == [4, 4, 4]
    assert banks[0]["layers"][0].startswith("stage1") and banks[0]["templates"] == 3
    np.testing.assert_allclose(banks[0]["similarity"], HAND_SIMILARITY, atol=1e-6)
    assert report_data(hand_folder).similarity[0] is None  # no coefficients.json recorded


def test_report_files_and_csv_columns(hand_folder):
    out = hand_folder / REPORT_DIR
    assert all((out / name).is_file() for name in FILES)
    trials, front = pd.read_csv(out / "trials.csv"), pd.read_csv(out / "pareto.csv")
    expected = {
        "trial",
        "state",
        "status",
        "plan",
        "plan_name",
        "shared",
        "depth",
        "width",
        "templates",
        "params",
        "macs",
        "val_acc",
        "best_val_acc_seen",
        "accuracy",
        "epochs",
        "curve",
        "train_seconds",
        "reason",
        "device",
        "started",
        "finished",
        "duplicate_of",
        "on_front",
        "knee",
        "retrain",
    }
    assert expected <= set(trials.columns) and list(trials.columns) == list(front.columns)
    assert list(trials["trial"]) == list(range(10)) and list(front["trial"]) == [0, 1, 3]
    assert json.loads(trials.loc[4, "curve"]) == [0.3, 0.5]
    assert json.loads(trials.loc[1, "templates"]) == [[3], [3], [3]]
    assert front.loc[1, "retrain"] == f"python search.py retrain {hand_folder} --pick trial:1"
    assert list(front["knee"]) == [False, True, False]
    png = Image.open(out / "pareto.png")
    assert png.format == "PNG" and len(png.convert("RGB").getcolors(1 << 20)) > 10
    page = (out / "index.html").read_text()
    assert page.count("Plotly.newPlot") >= 4 and "<script src=" not in page  # self-contained
    assert (
        "has not finished" in page
        and "100,000,000" in page
        and "farthest from the straight line" in page
    )


def test_terminal_summary_has_the_front_and_the_page(hand_folder):
    text = terminal_summary(report_data(hand_folder), hand_folder / REPORT_DIR / "index.html")
    assert "<- knee" in text and "SWRN-22-1-3" in text and "--pick trial:1" in text
    # the page's path, then (last) the one-sentence answer to "does sharing pay?" (nas.report.verdict)
    assert text.splitlines()[-2] == f"report: {hand_folder / REPORT_DIR / 'index.html'}"
    assert text.splitlines()[-1].startswith(
        "Sharing cannot be judged here: there are no baselines"
    )


def test_a_folder_that_is_not_a_study_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="no study folder"):
        write_report(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
    with pytest.raises(FileNotFoundError, match="not a study folder"):
        write_report(tmp_path)
    assert not (tmp_path / REPORT_DIR).exists()


def test_a_study_without_a_completed_trial_is_refused_and_the_old_report_kept(tmp_path):
    _made_study(
        tmp_path,
        "empty",
        [
            _trial(TrialState.FAIL, _attrs(SWRN, 100, "failed", reason="boom")),
            _trial(TrialState.RUNNING, _attrs(SWRN, 100, "running")),
        ],
    )
    (tmp_path / REPORT_DIR).mkdir()
    (tmp_path / REPORT_DIR / "index.html").write_text("old")
    with pytest.raises(ValueError, match="no completed trial yet .1 failed, 1 running.") as caught:
        write_report(tmp_path)
    assert "\n" not in str(caught.value)
    assert [p.name for p in (tmp_path / REPORT_DIR).iterdir()] == ["index.html"]
    assert (tmp_path / REPORT_DIR / "index.html").read_text() == "old"


def test_study_text_is_escaped_on_the_page(tmp_path):
    """Plan names, reasons, notes and the folder are the study's text: the page shows them, it
    never reads them as markup (the template escapes them)."""
    folder = tmp_path / "a&<b>" / "esc"
    name, reason = "<i>odd</i> & plan", "<script>alert(1)</script>"
    C, F = TrialState.COMPLETE, TrialState.FAIL
    trials = [
        _trial(C, _attrs("WRN-10-1", 10_000, "complete", [0.6], 1.0, plan_name=name), [0.6, 1e4]),
        _trial(C, _attrs(SWRN, 100_000, "complete", [0.7], 1.0, baseline=True), [0.7, 1e5]),
        _trial(F, _attrs("WRN-16-1", 10_000, "failed", reason=reason, baseline=True), None),
    ]
    _made_study(folder, "esc", trials)
    page = write_report(folder).read_text()
    html_only = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)  # plotly's JSON aside
    assert "<i>" not in html_only and "<script>alert" not in html_only and "a&<b>" not in page
    assert "&lt;i&gt;odd&lt;/i&gt; &amp; plan" in html_only  # the front's table and a card
    assert html_only.count("a&amp;&lt;b&gt;") >= 3  # settings, retrain command, footer
    assert "failed: not compared" in html_only  # the baseline's note, escaped text


@pytest.mark.slow
def test_report_of_a_trained_study(smoke_folder):
    data = report_data(smoke_folder)
    n = len(data.rows)  # 3 trained trials, plus any duplicate proposals (they take no slot)
    assert sum(r["status"] != "duplicate" for r in data.rows) == 3 and not data.running
    assert [r["trial"] for r in data.front] == [r["trial"] for r in front_rows(data.rows)]
    out = smoke_folder / REPORT_DIR
    assert all((out / name).stat().st_size > 0 for name in FILES)
    assert len(pd.read_csv(out / "trials.csv")) == n
    assert list(pd.read_csv(out / "pareto.csv")["trial"]) == [r["trial"] for r in data.front]


# --- the page in a real browser ----------------------------------------------------------------


def _assert_not_blank(png: bytes, path) -> None:
    path.write_bytes(png)
    colours = Image.open(path).convert("RGB").getcolors(1 << 20)
    assert colours is not None and len(colours) > 20, "the screenshot is (nearly) a single colour"


@pytest.mark.browser
def test_page_of_hand_made_study_renders_every_trial(browser, hand_folder, tmp_path):
    counts, errors, _ = open_page(browser, hand_folder / REPORT_DIR / "index.html")
    assert errors == []
    assert counts["data"] == 9  # every trial with a parameter count; trial 9 has none yet
    assert counts["drawn"] == 9 + 1  # and the knee's star
    assert counts["plots"] == 4  # scatter, hypervolume, curves, one similarity figure (trial 1)
    z = browser.execute_script(
        "return Array.from(document.getElementById('similarity-1')._fullData[0].z, "
        "row => Array.from(row))"
    )
    np.testing.assert_allclose(z, HAND_SIMILARITY, atol=1e-6)
    _assert_not_blank(browser.get_screenshot_as_png(), tmp_path / "hand.png")


@pytest.mark.browser
def test_page_of_trained_study_has_no_script_errors(browser, smoke_folder, tmp_path):
    n = len(report_data(smoke_folder).rows)
    counts, errors, _ = open_page(browser, smoke_folder / REPORT_DIR / "index.html")
    assert errors == []
    assert counts["data"] == n and counts["drawn"] == n + 1
    _assert_not_blank(browser.get_screenshot_as_png(), tmp_path / "smoke.png")


def _thousand_trials(folder) -> None:
    """1,000 trials as nas.trial records them (no training): 70% complete, 25% stopped, 5% failed."""
    rng = random.Random(0)
    plans = [
        "WRN-16-4",
        "SWRN-16-4-2",
        "SWRN-28-10-6",
        "28-10:2x3,4/6x2/6",
        "22-8:4x2/2x3,2/4",
        "WRN-28-10",
    ]
    trials = []
    for _i in range(1000):
        params = int(10 ** rng.uniform(5, 7.6))
        acc = min(0.97, 0.6 + 0.05 * math.log10(params) + rng.gauss(0, 0.04))
        curve = [acc * (1 - 0.5 ** (e + 1)) for e in range(30)]
        kind = rng.random()
        if kind < 0.70:
            attrs = _attrs(rng.choice(plans), params, "complete", curve, 600.0)
            trials.append(_trial(TrialState.COMPLETE, attrs, [max(curve), params]))
        elif kind < 0.95:
            attrs = _attrs(
                rng.choice(plans),
                params,
                "pruned",
                curve[: rng.choice([3, 9, 27])],
                200.0,
                reason="below the rung",
            )
            trials.append(_trial(TrialState.PRUNED, attrs, None))
        else:
            trials.append(
                _trial(
                    TrialState.FAIL,
                    _attrs(rng.choice(plans), params, "failed", reason="OOM"),
                    None,
                )
            )
    _made_study(folder, "thousand", trials)
    banks = coefficient_matrices(build_model("SWRN-16-1-2"))
    for number in [
        t.number
        for t in optuna.load_study(study_name="thousand", storage=open_storage(folder)).trials
        if t.state == TrialState.COMPLETE
    ]:
        (folder / "trials" / f"{number:04d}").mkdir(parents=True)
        (folder / "trials" / f"{number:04d}" / "coefficients.json").write_text(dumps(banks))


@pytest.mark.browser
def test_page_of_a_thousand_trials_stays_usable(browser, tmp_path):
    _thousand_trials(tmp_path)
    start = time.perf_counter()
    page = write_report(tmp_path)
    built = time.perf_counter() - start
    counts, errors, seconds = open_page(browser, page)
    size = page.stat().st_size
    print(
        f"\n1,000 trials: page {size / 1e6:.2f} MB, written in {built:.1f} s, drawn in {seconds:.1f} s"
    )
    assert errors == [] and counts["data"] == 1000 and counts["drawn"] == 1000 + 1
    assert size < 8e6 and seconds < 30
    _assert_not_blank(browser.get_screenshot_as_png(), tmp_path / "thousand.png")


def test_a_study_without_baselines_says_so_and_draws_no_comparison(hand_folder):
    data = report_data(hand_folder)
    assert data.verdict.counts["baselines"] == 0
    assert not any(
        r["tied_with_next"] for r in data.rows
    )  # no validation-set size: every difference counts
    page = (hand_folder / REPORT_DIR / "index.html").read_text()
    section = page[page.index('<section id="sharing-section">') :]
    section = section[: section.index("</section>")]
    assert "there are no baselines in this study (--baselines none)" in section
    assert 'id="sharing"' not in section and "<table" not in section
