"""--fidelity inherit: parents trained once per study, trials fine-tuned from them, the report and
retrain saying so, a SIGKILLed study resumed without retraining a finished parent."""

import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

import search
from nas.config import StudyConfig, load_study_config, save_study_config
from nas.fidelity import ParentDiverged, parent_names, parent_runs, trial_recipe
from nas.optuna_backend import run_study
from nas.report import report_data, terminal_summary, write_report
from nas.study import open_existing, prepare_study, study_counts
from softshare.checkpoint import atomic_write_text, dumps
from tests import REPO
from tests.studies import make_study, smoke_cfg


def _cfg(name="i", **kw):
    base = dict(baselines="paper", fidelity="inherit", inherit_epochs=1)
    return smoke_cfg(name, **(base | kw))


# --- the config: recipe, budget, identity -----------------------------------------------------


def test_an_inherit_trial_fine_tunes_and_is_judged_against_its_own_budget():
    cfg = _cfg(recipe={"epochs": 6, "schedule": "step", "lr": 0.1}, inherit_epochs=2)
    tuned = trial_recipe(cfg)
    assert (tuned.epochs, tuned.lr, tuned.schedule) == (2, 0.01, "cosine")
    assert cfg.train_config().epochs == 6  # the parents' recipe: the study's, at full budget
    assert cfg.stop_rule().max_epochs == 2 and cfg.trial_epochs() == 2
    scratch = _cfg(fidelity="scratch", recipe={"epochs": 6})
    assert trial_recipe(scratch) == scratch.train_config() and scratch.stop_rule().max_epochs == 6
    assert parent_names(cfg.search_space()) == ["WRN-16-1"]
    assert parent_names(StudyConfig(name="p", preset="paper").search_space())[:2] == [
        "WRN-22-4",
        "WRN-22-8",
    ]


@pytest.mark.parametrize(
    "kw,fragment",
    [
        ({"fidelity": "warm"}, "fidelity must be one of scratch, inherit"),
        ({"inherit_epochs": 0}, "inherit_epochs must be an integer >= 1"),
        ({"inherit_epochs": 1.5}, "inherit_epochs must be an integer"),
        ({"inherit_lr": 0}, "inherit_lr must be a number > 0"),
        ({"inherit_lr": "0.1"}, "inherit_lr must be a number > 0"),
    ],
)
def test_bad_fidelity_settings_name_the_field(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        _cfg(**kw)


def test_study_files_without_fidelity_keys_load_as_scratch(tmp_path):
    keys = ("fidelity", "inherit_epochs", "inherit_lr")
    format_2 = {k: v for k, v in StudyConfig(name="old").to_dict().items() if k not in keys}
    format_1 = {"name": "old", "preset": "smoke", "recipe": {"epochs": 3}, "format_version": 1}
    for old in (format_1, format_2):
        (tmp_path / "study.json").write_text(json.dumps(old))
        cfg = load_study_config(tmp_path)
        assert cfg.fidelity == "scratch" and trial_recipe(cfg) == cfg.train_config()
        assert cfg.identity_differences(StudyConfig.from_dict(old)) == []


def test_a_resume_with_another_fidelity_is_refused_in_one_line(tmp_path, capsys):
    folder = make_study(tmp_path / "hand", [("WRN-16-1", 0.5, "COMPLETE", {})])
    saved = load_study_config(folder)
    for flags, change in (
        ({"fidelity": "inherit"}, "fidelity 'scratch' -> 'inherit'"),
        ({"inherit_epochs": 3}, "inherit_epochs 2 -> 3"),
    ):
        with pytest.raises(ValueError, match=change):
            prepare_study(saved.with_flags(flags), folder)
    code = search.main(["study", "hand", "--results-dir", str(tmp_path), "--fidelity", "inherit"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "fidelity 'scratch' -> 'inherit'" in err[0], err
    stored = json.loads((folder / "study.json").read_text())
    assert stored["fidelity"] == "scratch" and stored["inherit_epochs"] == 2


# --- the report of a hand-made inherit study ----------------------------------------------------


def test_the_report_names_each_accuracys_fidelity_and_pays_the_parents_first(tmp_path):
    attrs = {"fidelity": "inherit", "parent": "WRN-16-1", "inherit_epochs": 1}
    folder = make_study(
        tmp_path / "h",
        [
            ("WRN-16-1", 0.50, "COMPLETE", attrs | {"projection_error": 0.0}),
            ("SWRN-16-1-1", 0.60, "COMPLETE", attrs | {"projection_error": 0.4}),
        ],
    )
    cfg = load_study_config(folder).with_flags({"fidelity": "inherit", "inherit_epochs": 1})
    atomic_write_text(folder / "study.json", dumps(cfg.to_dict()))
    parent = {"status": "complete", "epochs_run": 4, "best_val_acc": 0.55}
    parent |= {"final_val_acc": 0.5, "train_seconds": 100.0, "history": []}
    (folder / "parents" / "WRN-16-1").mkdir(parents=True)
    atomic_write_text(folder / "parents" / "WRN-16-1" / "metrics.json", dumps(parent))
    data = report_data(folder)
    assert [p["name"] for p in data.parents] == ["WRN-16-1"]
    assert data.hypervolume[0].seconds == pytest.approx(100.0)  # the parent, then trials
    text = terminal_summary(data)
    assert (
        "fidelity inherit" in text and "WRN-16-1 (complete, val 55.00%, 4 epochs, 100 s)" in text
    )
    assert "inherit WRN-16-1" in text.splitlines()[3]  # the front table's fidelity column
    page = write_report(folder).read_text()
    assert "<th>fidelity</th>" in page and "inherit WRN-16-1" in page
    csv = (folder / "report" / "trials.csv").read_text().splitlines()
    assert "fidelity" in csv[0].split(",") and "projection_error" in csv[0].split(",")
    scratch = make_study(tmp_path / "s", [("WRN-16-1", 0.5, "COMPLETE", {})])
    assert "fidelity scratch" in terminal_summary(report_data(scratch))
    assert all(r["fidelity"] == "scratch" for r in report_data(scratch).rows)


# --- a real inherit study -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inherit_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inherit") / "i"
    study = run_study(_cfg(), folder)
    return folder, study


@pytest.mark.slow
def test_an_inherit_study_trains_its_parent_once_and_fine_tunes_every_trial(inherit_study):
    folder, study = inherit_study
    counts = study_counts(study)
    assert counts["complete"] + counts["pruned"] == 3 and counts["failed"] == 0
    assert [p["name"] for p in parent_runs(folder)] == ["WRN-16-1"]
    parent = json.loads((folder / "parents" / "WRN-16-1" / "metrics.json").read_text())
    assert parent["status"] == "complete" and parent["epochs_run"] == 2  # the full budget
    assert (folder / "parents" / "WRN-16-1" / "checkpoint.pt").is_file()
    for t in study.trials:
        a = t.user_attrs
        assert a["fidelity"] == "inherit" and a["parent"] == "WRN-16-1", a
        assert a["inherit_epochs"] == 1 and len(a["curve"]) == 1 and a["epochs_run"] == 1
        assert a["parent_val_acc"] == parent["best_val_acc"] and a["parent_epochs"] == 2
        assert 0.0 <= a["projection_error"] <= 1.0
        record = json.loads((folder / "trials" / f"{t.number:04d}" / "trial.json").read_text())
        assert record["train_config"]["epochs"] == 1 and record["train_config"]["lr"] == 0.01
        assert record["fidelity"] == {
            "fidelity": "inherit",
            "inherit_epochs": 1,
            "inherit_lr": 0.01,
        }
    plain = next(t for t in study.trials if t.user_attrs["plan_name"] == "WRN-16-1")
    assert plain.user_attrs["projection_error"] == 0.0  # the parent itself, copied exactly


@pytest.mark.slow
def test_a_rerun_trains_no_parent_and_the_cli_report_and_retrain_say_inherit(inherit_study):
    folder, _ = inherit_study
    weights = folder / "parents" / "WRN-16-1" / "checkpoint.pt"
    stamp = weights.stat().st_mtime_ns
    again = run_study(_cfg(n_trials=4), folder)  # one more trial: it loads the parent
    assert study_counts(again)["complete"] + study_counts(again)["pruned"] == 4
    assert weights.stat().st_mtime_ns == stamp
    report = subprocess.run(
        [sys.executable, str(REPO / "search.py"), "report", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert "fidelity inherit" in report.stdout and "inherit WRN-16-1" in report.stdout
    retrained = subprocess.run(
        [sys.executable, str(REPO / "search.py"), "retrain", str(folder), "--pick", "best"]
        + ["--epochs", "1", "--device", "cpu", "--quiet", "--from-parent"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert retrained.returncode == 0, retrained.stderr
    assert "from parent WRN-16-1" in retrained.stdout and "from-parent-seed-0" in retrained.stdout
    summary = next((folder / "retrain").glob("*/summary.json"))
    assert json.loads(summary.read_text())["from_parent"] == "WRN-16-1"


def _study_args(results: pathlib.Path) -> list[str]:
    """The command that creates or resumes study ``k`` (its settings saved in study.json)."""
    return [sys.executable, str(REPO / "search.py"), "study", "k", "--results-dir", str(results)]+[
        "--quiet"]  # fmt: skip


KILL_EPOCHS = 8  # fine-tuning epochs of the killed study: a window of 7 epochs to kill it in


def _mid_trial(folder: pathlib.Path) -> bool:
    """A trial has fine-tuned at least one epoch of its KILL_EPOCHS, and not all of them."""
    for path in (folder / "trials").glob("*/metrics.json"):
        try:
            if 1 <= json.loads(path.read_text())["epochs_run"] < KILL_EPOCHS:
                return True
        except (OSError, ValueError, KeyError):
            continue
    return False


@pytest.mark.slow
def test_a_study_killed_after_its_parent_finished_resumes_without_retraining_it(tmp_path):
    parent = tmp_path / "k" / "parents" / "WRN-16-1"
    (tmp_path / "k").mkdir()  # TINY_DATA, which no flag sets: the command resumes these settings
    # A trial of two fine-tuning epochs ran in under the 0.1 s between two looks on a fast
    # machine, so the study sometimes ended before it was seen mid-trial: 8 epochs, looked at
    # every 20 ms.
    cfg = _cfg("k", n_trials=2, inherit_epochs=KILL_EPOCHS, early_stopping={"enabled": False})
    save_study_config(cfg, tmp_path / "k")
    proc = subprocess.Popen(
        _study_args(tmp_path), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    try:  # the parent is complete and a trial has fine-tuned an epoch: kill it mid-trial
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
            runs = parent_runs(tmp_path / "k")
            if runs and runs[0]["status"] == "complete" and _mid_trial(tmp_path / "k"):
                break
        assert proc.poll() is None, "the study ended before it could be killed mid-trial"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _, study = open_existing(tmp_path / "k")
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == 1  # killed mid-trial
    before = {f: (parent / f).stat().st_mtime_ns for f in ("checkpoint.pt", "metrics.json")}
    done = subprocess.run(_study_args(tmp_path), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {f: (parent / f).stat().st_mtime_ns for f in before} == before  # never retrained
    assert json.loads((parent / "metrics.json").read_text())["epochs_run"] == 2
    _, study = open_existing(tmp_path / "k")
    counts = study_counts(study)
    assert counts["complete"] + counts["pruned"] == 2 and counts["running"] == 0
    died = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(died) == 1 and died[0].user_attrs["reason"].endswith("died"), died
    assert all(t.user_attrs.get("fidelity") == "inherit" for t in study.trials if t.values)


def test_a_diverged_parent_stops_the_study_at_once_in_one_line(tmp_path, capsys):
    """Every trial of its shape would fail the same way: one failed trial, then one line."""
    from nas.schema import parent_dir, replicate_counts, status_counts

    folder = tmp_path / "div"
    cfg = _cfg("div", n_trials=4)
    prepare_study(cfg, folder)
    parent = parent_dir(folder, "WRN-16-1")
    parent.mkdir(parents=True)
    (parent / "metrics.json").write_text(
        json.dumps({"status": "diverged", "stop_reason": "non-finite loss at epoch 1"})
    )
    (parent / "checkpoint.pt").write_bytes(b"weights of a diverged run")
    with pytest.raises(ParentDiverged, match="parent WRN-16-1 of study 'div' diverged"):
        run_study(cfg, folder)
    code = search.main(["study", "div", "--results-dir", str(tmp_path), "--quiet"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error" in line]
    assert code == 1 and len(err) == 1, err
    assert "parent WRN-16-1 of study 'div' diverged" in err[0] and "--fidelity scratch" in err[0]
    trials = open_existing(folder)[1].trials  # every run: the second was a baseline's replicate
    counts = status_counts(trials) + replicate_counts(trials)
    assert counts["failed"] == 2 and counts["complete"] + counts["pruned"] == 0, counts
