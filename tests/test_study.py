import json
import signal
import subprocess
import sys
import time

import optuna
import pytest

from nas.config import StudyConfig
from nas.optuna_backend import run_study
from nas.study import open_existing, study_counts
from tests import REPO
from tests.studies import ONE_RUN, smoke_cfg


def _cfg(name="s", **kw):
    return smoke_cfg(name, **(dict(n_trials=5, baselines="paper") | ONE_RUN | kw))


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study") / "s"
    study = run_study(_cfg(n_trials=6), folder)
    return folder, study


@pytest.mark.slow
def test_smoke_study_runs_end_to_end(smoke_study):
    folder, study = smoke_study
    counts = study_counts(study)
    assert counts["complete"] + counts["pruned"] == 6 and counts["running"] == 0
    assert (folder / "study.json").is_file() and (folder / "journal.log").is_file()
    trained = [t for t in study.trials if t.user_attrs.get("status") in ("complete", "pruned")]
    assert trained
    for t in trained:
        record = json.loads((folder / "trials" / f"{t.number:04d}" / "trial.json").read_text())
        assert record["attrs"]["plan"] == t.user_attrs["plan"]
        assert len(t.user_attrs["curve"]) == t.user_attrs["epochs_run"]
        assert not (folder / "trials" / f"{t.number:04d}" / "checkpoint.pt").exists()
        if t.user_attrs["shared"]:
            coeffs = json.loads(
                (folder / "trials" / f"{t.number:04d}" / "coefficients.json").read_text()
            )
            assert coeffs and all(len(c["similarity"]) == len(c["layers"]) for c in coeffs)
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values[1] == t.user_attrs["params"] and 0 <= t.values[0] <= 1
            assert "test" not in " ".join(t.user_attrs)  # the search never sees the test set


@pytest.mark.slow
def test_rerun_of_finished_study_trains_nothing(smoke_study):
    folder, study = smoke_study
    before = [(t.number, t.state, t.values) for t in study.trials]
    again = run_study(_cfg(n_trials=6), folder)
    assert [(t.number, t.state, t.values) for t in again.trials] == before


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(smoke_study):
    folder, _ = smoke_study
    with pytest.raises(
        ValueError, match=r"other settings \(saved -> now: .*recipe.epochs 2 -> 3\)"
    ):
        run_study(_cfg(n_trials=6, recipe={"epochs": 3}), folder)


@pytest.mark.slow
def test_over_budget_configs_are_rejected_untrained(tmp_path):
    budget = 140_000  # between SWRN-16-1-1 (126,688) and WRN-16-1 (175,066)
    study = run_study(
        _cfg(max_params=budget, n_trials=4, space={"depths": [16], "widths": [1]}), tmp_path / "b"
    )
    trained = [t for t in study.trials if t.user_attrs.get("status") in ("complete", "pruned")]
    assert len(trained) == 4 and all(t.user_attrs["params"] <= budget for t in trained)
    assert "WRN-16-1" not in {
        t.user_attrs["plan_name"] for t in study.trials
    }  # the plain baseline does not fit
    over = [t for t in study.trials if t.user_attrs.get("status") == "over-budget"]
    for t in over:  # recorded for the sampler, never trained, no slot taken
        assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["params"] > budget
        assert not (tmp_path / "b" / "trials" / f"{t.number:04d}").exists()


@pytest.mark.slow
def test_an_interrupted_baseline_runs_again_as_a_baseline_on_resume(tmp_path, monkeypatch):
    """Ctrl-C in the first baseline, then the same command again: the baseline is queued again
    as a baseline (its slot used to be refilled with a searched plan, and the verdict showed the
    baseline failed for good)."""
    import nas.trial as backend  # where the trial is trained
    from nas.report.results import trial_rows
    from nas.report.verdict import dominance_table
    from nas.schema import TRAINED

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    cfg = _cfg(name="bi", n_trials=3, baselines="paper:2", recipe={"epochs": 1})
    folder = tmp_path / "bi"
    with monkeypatch.context() as patch:
        patch.setattr(backend, "train", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_study(cfg, folder)
    study = run_study(cfg, folder)
    first = study.trials[0]
    assert first.user_attrs["baseline"] and first.user_attrs["reason"] == "interrupted"
    trained = [t for t in study.trials if t.user_attrs.get("status") in TRAINED]
    names = {t.user_attrs["plan_name"] for t in trained if t.user_attrs["baseline"]}
    assert names == set(study.user_attrs["baselines"]) and first.user_attrs["plan_name"] in names
    assert len(trained) == 3 and sum(not t.user_attrs["baseline"] for t in trained) == 1
    table = dominance_table(trial_rows(study))  # what the verdict says of each baseline
    assert sorted(e.baseline["plan_name"] for e in table) == sorted(names)
    assert all(e.baseline["status"] in TRAINED for e in table), table


@pytest.mark.slow
def test_baselines_run_first_with_the_same_recipe_and_are_marked(smoke_study):
    folder, study = smoke_study
    baselines = [t for t in study.trials if t.user_attrs.get("baseline")]
    assert [t.number for t in baselines] == [
        0
    ]  # 6 trials: a quarter is one baseline, trained first
    assert baselines[0].user_attrs["plan_name"] == "WRN-16-1"
    assert all(
        not t.user_attrs.get("baseline") and t.user_attrs["shared"] for t in study.trials[1:]
    )
    records = [
        json.loads((folder / "trials" / f"{t.number:04d}" / "trial.json").read_text())
        for t in study.trials
    ]
    assert len({json.dumps(r["train_config"], sort_keys=True) for r in records}) == 1


@pytest.mark.slow
def test_two_workers_share_one_storage(tmp_path):
    study = run_study(_cfg(n_trials=6, workers=2), tmp_path / "w")
    counts = study_counts(study)
    assert counts["running"] == 0 and counts["failed"] == 0
    # the slot lock: two workers never overshoot n_trials, and no trial is lost
    assert counts["complete"] + counts["pruned"] == 6, counts
    pids = {t.user_attrs["worker"]["pid"] for t in study.trials if "worker" in t.user_attrs}
    assert len(pids) == 2
    assert len({t.number for t in study.trials}) == len(study.trials)


def _cli(args, **kw):
    return subprocess.Popen(
        [sys.executable, str(REPO / "search.py"), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


TWO_PLANS = {  # SWRN-16-1-1 and SWRN-22-1-1, nothing else
    "depths": [16, 22],
    "widths": [1],
    "min_templates": 1,
    "max_templates": 1,
    "allow_cuts": False,
    "allow_unshared_groups": False,
}


def _twin(role: str, cfg_dict: dict, folder: str, events: dict) -> None:
    """One of two worker processes running a trial of the same plan on one journal, in the
    order that used to make both train: the younger trial (B) describes itself and decides
    first; the older (A) writes its plan only then, while B is still training."""
    import pathlib

    import nas.optuna_backend as backend
    import nas.trial as trial_module
    from nas.study import make_sampler
    from nas.trial import TrialContext, data_shape, val_images
    from softshare.data import load_dataset

    cfg = StudyConfig.from_dict(cfg_dict)
    data = load_dataset(cfg.data_config())
    study = backend.open_study(cfg.name, backend.open_storage(pathlib.Path(folder)))
    study.sampler = make_sampler(cfg, data_shape(data))
    real_describe, real_train = backend.describe, trial_module.train
    real_skipped = backend.finish_skipped

    def wait(name):
        assert events[name].wait(120), f"{role}: no {name} in 120 s"

    def decided(*args, **kwargs):  # this worker trains: say so, then (B) wait for A to decide
        events[f"{role} decided"].set()
        if role == "B":
            wait("A decided")
        return real_train(*args, **kwargs)

    def skipped(*args, **kwargs):
        events[f"{role} decided"].set()
        return real_skipped(*args, **kwargs)

    def late_describe(*args, **kwargs):  # A: its plan is written after B has decided
        wait("B decided")
        return real_describe(*args, **kwargs)

    trial_module.train, backend.finish_skipped = decided, skipped
    if role == "A":
        backend.describe = late_describe
    else:
        wait("A asked")
    study.enqueue_trial({"depth": 16, "width": 1})  # the fixed values of one plan
    trial = study.ask()
    events[f"{role} asked"].set()
    ctx = TrialContext(cfg, pathlib.Path(folder), trial.number, data_shape(data), study=study)
    ctx.trial, ctx.data, ctx.val_size = trial, data, val_images(data)
    backend.run_trial(ctx)


@pytest.mark.slow
def test_two_workers_never_train_the_same_architecture(tmp_path):
    """Two processes on one storage, a space of two plans, two trials of one plan: the younger
    decides before the older has written its plan. Exactly one trains it (both used to: two
    COMPLETE copies), the other is recorded as its duplicate."""
    import multiprocessing

    from nas.study import prepare_study

    cfg = _cfg(name="twins", n_trials=2, baselines="none", space=TWO_PLANS)
    folder = tmp_path / "twins"
    cfg = prepare_study(cfg, folder)
    ctx = multiprocessing.get_context("spawn")
    names = ("A asked", "B asked", "A decided", "B decided")
    events = {name: ctx.Event() for name in names}
    procs = {
        role: ctx.Process(target=_twin, args=(role, cfg.to_dict(), str(folder), events))
        for role in ("A", "B")
    }
    for p in procs.values():
        p.start()
    for p in procs.values():
        p.join(timeout=300)
    assert [p.exitcode for p in procs.values()] == [0, 0]
    study = open_existing(folder)[1]
    assert [t.user_attrs["plan_name"] for t in study.trials] == ["SWRN-16-1-1"] * 2
    statuses = {t.number: t.user_attrs["status"] for t in study.trials}
    assert statuses == {0: "duplicate", 1: "complete"}, statuses  # B claimed it first
    assert study.trials[0].user_attrs["reason"] == "same architecture as trial 1; not trained"


@pytest.mark.slow
def test_killed_study_resumes_without_losing_finished_trials(tmp_path, search_cli):
    args = [
        "study",
        "k",
        "--results-dir",
        str(tmp_path),
        "--n-trials",
        "4",
        "--epochs",
        "10",
        "--device",
        "cpu",
        "--quiet",
        "--dataset",
        "synthetic",
        "--image-size",
        "12",
        "--no-early-stopping",
    ]
    proc = _cli(args)
    deadline = time.time() + 240
    finished = []
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (tmp_path / "k" / "journal.log").exists():
            _, study = open_existing(tmp_path / "k")
            finished = [t for t in study.trials if t.state.is_finished()]
            running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
            if len(finished) >= 2 and running and running[0].user_attrs.get("curve"):
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(finished) >= 2, "the study did not get far enough to be killed mid-trial"
    kept = {t.number: (t.state, t.values) for t in finished}
    done = search_cli(*args)
    assert done.returncode == 0, done.stderr
    _, study = open_existing(tmp_path / "k")
    for number, (state, values) in kept.items():
        assert (study.trials[number].state, study.trials[number].values) == (state, values)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and "died" in failed[0].user_attrs["reason"]
    counts = study_counts(study)
    assert counts["complete"] + counts["pruned"] == 4 and counts["running"] == 0


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--preset", "gpu"], "argument --preset: invalid choice: 'gpu'"),
        pytest.param(["--dataset", "mnist"], "unknown dataset 'mnist'", marks=pytest.mark.slow),
        (["--n-trials", "0"], "--n-trials: expected an integer >= 1"),
        (["--eta", "1"], "--eta: expected an integer >= 2"),
    ],
)
def test_bad_study_flags_give_one_line(tmp_path, search_cli, args, fragment):
    done = search_cli("study", "x", "--results-dir", str(tmp_path), *args, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], done.stderr


def test_a_budget_below_every_plan_is_refused_before_anything_is_made(tmp_path, capsys):
    """--max-params under the smallest plan of the space would train nothing: one line naming
    that plan and its size, exit 2, no study folder (it used to say "no trials" and exit 0)."""
    import search

    args = ["study", "x", "--results-dir", str(tmp_path), "--max-params", "1k", "--quiet"]
    code = search.main([*args, "--image-size", "8", "--train-subset", "100", "--device", "cpu"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "max_params 1,000" in lines[0] and "SWRN-16-1-1" in lines[0], lines
    assert "126,688 parameters" in lines[0], lines
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_bad_space_file_gives_one_line(tmp_path, search_cli):
    bad = tmp_path / "space.json"
    bad.write_text('{"depths": [12]}')
    done = search_cli(
        "study", "x", "--results-dir", str(tmp_path), "--space", str(bad), timeout=120
    )
    assert (
        done.returncode == 2
        and "depths must be" in done.stderr
        and len(done.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "x").exists()


def test_the_runs_are_what_both_backends_judge_against():
    """Every trial's curve up to its first non-finite epoch, with its parameters; trials without
    a curve or a size are left out (the Ray scheduler starts from this, the Optuna callback
    reads it every epoch)."""
    import optuna
    from optuna.distributions import FloatDistribution

    from nas.replicates import runs_of

    def made(state, attrs):
        return optuna.trial.create_trial(
            state=state,
            params={"x": 0.5},
            distributions={"x": FloatDistribution(0, 1)},
            values=[0.5, 10.0] if state == optuna.trial.TrialState.COMPLETE else None,
            user_attrs=attrs,
        )

    study = optuna.create_study(directions=["maximize", "minimize"])
    TS = optuna.trial.TrialState
    study.add_trial(made(TS.COMPLETE, {"curve": [0.1, 0.5], "params": 100}))
    study.add_trial(made(TS.FAIL, {"curve": [0.2, 0.3, None], "params": 200}))  # diverged
    study.add_trial(made(TS.FAIL, {"curve": [None], "params": 300}))  # diverged at once
    study.add_trial(made(TS.PRUNED, {"curve": [0.4], "params": None}))  # no size recorded
    study.add_trial(made(TS.PRUNED, {"curve": [0.25], "params": 400}))
    assert {r.number: (list(r.curve), r.params) for r in runs_of(study.get_trials())} == {
        0: ([0.1, 0.5], 100),
        1: ([0.2, 0.3], 200),
        4: ([0.25], 400),
    }


@pytest.mark.slow
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_is_refused_before_any_trial(tmp_path, search_cli):
    done = search_cli(
        "study", "gpu", "--results-dir", str(tmp_path), "--device", "cuda", timeout=120
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU is available; use --device cpu" in lines[0], lines
    assert not (tmp_path / "gpu").exists()  # nothing written, no trial recorded as failed
