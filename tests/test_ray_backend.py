"""The Ray Tune backend on a real local Ray runtime (2 CPUs): smoke trials end to end, the early
stopping scheduler against the shared rule, a dead worker retried, an interrupted run restored."""

import json
import logging
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest
import ray
from optuna.trial import TrialState
from ray import cloudpickle, tune
from ray.tune.schedulers import TrialScheduler

from nas.early_stop import StopRule, decide
from nas.ray_backend import RayOptions, RayRunInterrupted, run_ray, train_trial
from nas.ray_search import STUDY_TRIAL, EarlyStopScheduler
from nas.report.results import trial_rows
from nas.schema import status_counts
from nas.storage import open_storage
from nas.study import stop_rule_for, study_counts
from tests import REPO
from tests.studies import ONE_RUN, ONE_RUN_FLAGS, TINY_DATA, smoke_cfg

pytestmark = pytest.mark.ray  # every test here needs Ray; most start a local runtime

QUIET = dict(verbose=0)
# Trainables defined here travel to Ray workers by value (the tests package is not installed).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _cfg(name, **kw):
    # A quarter of the trials are the study's baselines (one here, WRN-16-1), queued first;
    # replicates on Ray have their own test.
    base = dict(n_trials=4, baselines="paper", recipe={"epochs": 3})
    return smoke_cfg(name, **(base | ONE_RUN | kw))


def _load(folder: pathlib.Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(folder))


@pytest.fixture(scope="module")
def ray_runtime():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


# --- the scheduler alone: its decisions are nas.early_stop.decide -----------------------------------


class _Trial:
    def __init__(self, trial_id, last_result=None):
        self.trial_id, self.last_result = trial_id, last_result or {}


def _result(number, curve, params, **extra):
    return {STUDY_TRIAL: number, "curve": list(curve), "params": params} | extra


def _rising_curve(rng: random.Random, epochs: int) -> list[float]:
    """A noisy learning curve: some trials keep improving, some flatten (plateau rule), ranks vary."""
    base, slope = rng.uniform(0.1, 0.4), rng.choice([0.0, 0.02, 0.06])
    return [round(min(1.0, base + slope * e + rng.uniform(-0.02, 0.02)), 3) for e in range(epochs)]


def test_scheduler_decisions_are_the_shared_rule():
    rule = StopRule(max_epochs=9, min_epochs=1, eta=3, patience=3, min_delta=0.01)
    rng = random.Random(0)
    history = {100: ([0.3, 0.5, 0.6, 0.6], 50_000), 101: ([0.1], 9_000)}  # trials before this run
    scheduler = EarlyStopScheduler(rule, history)
    trials = {
        n: (_Trial(f"t{n}"), _rising_curve(rng, 9), rng.choice([8_000, 40_000, 90_000]))
        for n in range(12)
    }
    seen = {n: (list(c), p) for n, (c, p) in history.items()}
    stopped, checked = set(), 0
    for epoch in range(1, 10):
        for n, (trial, full, params) in trials.items():
            if n in stopped:
                continue
            curve = full[:epoch]
            others = [(c, p) for m, (c, p) in seen.items() if m != n]
            expected = decide(curve, params, others, rule) if epoch < rule.max_epochs else None
            seen[n] = (curve, params)
            action = scheduler.on_trial_result(None, trial, _result(n, curve, params))
            if expected is not None and expected.stop:
                assert (
                    action == TrialScheduler.STOP
                    and scheduler.stop_reason(trial.trial_id) == expected.reason
                )
                stopped.add(n)
            else:
                assert (
                    action == TrialScheduler.CONTINUE
                    and scheduler.stop_reason(trial.trial_id) is None
                )
            checked += 1
    assert checked > 20 and 0 < len(stopped) < len(trials)  # both outcomes were exercised


def test_scheduler_judges_no_final_report_and_learns_restored_trials():
    rule = StopRule(max_epochs=4, min_epochs=1, eta=2)
    scheduler = EarlyStopScheduler(rule)
    scheduler.on_trial_add(
        None, _Trial("a", _result(0, [0.9], 1000))
    )  # restored: brings its curve
    scheduler.on_trial_add(None, _Trial("new"))  # fresh: nothing yet
    assert scheduler.curves == {0: ([0.9], 1000)}
    assert (
        scheduler.on_trial_result(None, _Trial("b"), _result(1, [0.2], 5000))
        == TrialScheduler.STOP
    )
    assert scheduler.stop_reason("b") == "rung 1: rank 2 of 2, keeps top 1"
    final = _result(2, [0.1, 0.1, 0.1, 0.1], 9000, final=True)
    assert scheduler.on_trial_result(None, _Trial("c"), final) == TrialScheduler.CONTINUE
    # not judged, but its curve counts for later trials, as a finished trial's does on the
    # Optuna backend (nas.replicates.runs_of)
    assert scheduler.curves[2] == ([0.1, 0.1, 0.1, 0.1], 9000)
    # a diverged trial's epochs before the divergence count too, on both backends
    diverged = _result(4, [0.3, None], 7000, final=True)
    scheduler.on_trial_result(None, _Trial("e"), diverged)
    assert scheduler.curves[4] == ([0.3], 7000)
    # a trial at its last epoch finishes anyway, whatever its rank (train() ignores such a stop too)
    assert (
        scheduler.on_trial_result(None, _Trial("d"), _result(3, [0.0] * 4, 9000))
        == TrialScheduler.CONTINUE
    )


# --- a real Ray runtime -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sequential_study(ray_runtime, tmp_path_factory):
    """Five smoke trials one after the other: the order, so each decision's inputs, is known."""
    folder = tmp_path_factory.mktemp("ray") / "seq"
    study = run_ray(_cfg("seq", n_trials=5), folder, RayOptions(max_concurrent=1, **QUIET))
    return folder, study


def test_smoke_study_runs_end_to_end_on_ray(sequential_study):
    folder, study = sequential_study
    counts = study_counts(study)
    assert (
        counts["complete"] + counts["pruned"] == 5
        and counts["running"] == 0
        and counts["failed"] == 0
    )
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    runs = study.user_attrs["ray_runs"]
    assert runs and all(pathlib.Path(run["path"]).is_dir() for run in runs)
    assert {t.user_attrs["ray_run"] for t in study.trials} == {run["name"] for run in runs}
    rows = {r["trial"]: r for r in trial_rows(study)}  # what report and retrain read
    for t in study.trials:
        assert t.user_attrs["backend"] == "ray" and t.user_attrs["ray_run"] == runs[0]["name"]
        if t.user_attrs["status"] == "duplicate":
            continue
        trial_folder = folder / "trials" / f"{t.number:04d}"
        record = json.loads((trial_folder / "trial.json").read_text())
        assert (
            record["status"] == t.user_attrs["status"]
            and record["attrs"]["plan"] == t.user_attrs["plan"]
        )
        assert (
            len(t.user_attrs["curve"])
            == t.user_attrs["epochs_run"]
            == record["result"]["epochs_run"]
        )
        assert (
            not (trial_folder / "checkpoint.pt").exists()
            and not (trial_folder / "ray-checkpoint").exists()
        )
        assert (trial_folder / "coefficients.json").is_file()
        if t.state == TrialState.COMPLETE:
            assert t.values == [max(t.user_attrs["curve"]), t.user_attrs["params"]]
            assert rows[t.number]["val_acc"] == t.values[0] and rows[t.number]["epochs"] == 3


def test_an_inherit_study_on_ray_trains_its_parent_first_and_fine_tunes_from_it(
    ray_runtime, tmp_path
):
    cfg = _cfg("inh", n_trials=2, recipe={"epochs": 2}, fidelity="inherit", inherit_epochs=1)
    study = run_ray(cfg, tmp_path / "inh", RayOptions(max_concurrent=1, **QUIET))
    counts = study_counts(study)
    assert counts["complete"] + counts["pruned"] == 2 and counts["failed"] == 0, counts
    parent = tmp_path / "inh" / "parents" / "WRN-16-1"
    run = json.loads((parent / "metrics.json").read_text())
    assert run["status"] == "complete" and run["epochs_run"] == 2
    for t in study.trials:
        a = t.user_attrs
        assert a["fidelity"] == "inherit" and a["parent"] == "WRN-16-1", a
        assert len(a["curve"]) == 1 and 0.0 <= a["projection_error"] <= 1.0
    stamp = (parent / "checkpoint.pt").stat().st_mtime_ns
    run_ray(cfg.with_flags({"n_trials": 3}), tmp_path / "inh", RayOptions(**QUIET))
    assert (parent / "checkpoint.pt").stat().st_mtime_ns == stamp  # trained once


def test_learned_plans_on_ray_are_queued_once_behind_the_baselines_from_a_parent_trained_once(
    ray_runtime, tmp_path
):
    cfg = _cfg("lrn", n_trials=3, baselines="paper:1", recipe={"epochs": 1}, learned_plans=1)
    study = run_ray(cfg, tmp_path / "lrn", RayOptions(max_concurrent=1, **QUIET))
    rows = study.user_attrs["learned_plans"]
    learned = [t for t in study.trials if t.user_attrs.get("learned")]
    assert len(rows) == 1 and [t.user_attrs["plan"] for t in learned] == [rows[0]["plan"]]
    assert learned[0].number == 1 and study.trials[0].user_attrs["baseline"]
    assert learned[0].state == TrialState.COMPLETE and learned[0].params["depth"] == 16
    assert status_counts(study.trials)["complete"] == 3
    parent = tmp_path / "lrn" / "parents" / "WRN-16-1"
    stamp = (parent / "checkpoint.pt").stat().st_mtime_ns
    again = run_ray(cfg.with_flags({"n_trials": 4}), tmp_path / "lrn", RayOptions(**QUIET))
    assert (parent / "checkpoint.pt").stat().st_mtime_ns == stamp  # trained once
    assert [t.number for t in again.trials if t.user_attrs.get("learned")] == [1]


def test_ray_scheduler_stops_exactly_the_trials_the_shared_rule_stops(sequential_study):
    _, study = sequential_study
    val_sizes = {t.user_attrs["val_images"] for t in study.trials}
    assert (
        len(val_sizes) == 1 and None not in val_sizes
    )  # the noise margin's input reached every trial
    rule = stop_rule_for(_cfg("seq"), val_sizes.pop())  # as the scheduler builds it
    done: list[
        tuple[list[float], int]
    ] = []  # trials are sequential: others = earlier trials' curves
    rung_checks = 0
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.user_attrs["status"] == "duplicate":
            continue
        curve, params = t.user_attrs["curve"], t.user_attrs["params"]
        expected_stop = None
        for epoch in range(1, rule.max_epochs):
            decision = decide(curve[:epoch], params, done, rule)
            rung_checks += epoch in rule.rungs and len(done) + 1 >= rule.min_trials
            if decision.stop:
                expected_stop = (epoch, decision.reason)
                break
        if expected_stop is None:
            assert t.state == TrialState.COMPLETE and len(curve) == rule.max_epochs, t.number
        else:
            assert (
                t.state == TrialState.PRUNED
                and (len(curve), t.user_attrs["reason"]) == expected_stop
            ), t.number
        done.append((curve, params))
    assert rung_checks > 0, "no trial met enough others at a rung: the test checked nothing"


def test_queued_trials_run_on_ray_even_when_they_fill_every_slot(ray_runtime, tmp_path):
    """Baselines paper:N with N = n_trials queue every slot; they ran on the Optuna backend only."""
    cfg = _cfg("queue", n_trials=2, baselines="paper:2", recipe={"epochs": 1})
    study = run_ray(cfg, tmp_path / "queue", RayOptions(max_concurrent=2, **QUIET))
    counts = study_counts(study)
    assert counts["complete"] + counts["pruned"] == 2 and counts["waiting"] == 0, counts
    assert all(t.user_attrs.get("baseline") for t in study.trials)


def test_replicates_run_on_ray_with_their_own_seeds_and_take_no_slot(ray_runtime, tmp_path):
    """A baseline's second seed, then the confirmation of the front, on the Ray backend."""
    cfg = _cfg(
        "rep",
        n_trials=2,
        baselines="paper:1",
        baseline_seeds=2,
        confirm_seeds=1,
        recipe={"epochs": 1},
        early_stopping={"enabled": False},
    )
    study = run_ray(cfg, tmp_path / "rep", RayOptions(max_concurrent=1, **QUIET))
    trials = study.trials
    assert status_counts(trials)["complete"] == 2 and sum(status_counts(trials).values()) == 2
    replicates = [t for t in trials if t.user_attrs.get("replicate_of") is not None]
    assert replicates and all(t.state == TrialState.COMPLETE for t in replicates)
    for t in replicates:
        original = trials[t.user_attrs["replicate_of"]]
        assert t.params == {} and t.user_attrs["plan"] == original.user_attrs["plan"]
        assert t.user_attrs["seed"] == 1 and original.user_attrs["seed"] == 0
        config = json.loads(
            (tmp_path / "rep" / "trials" / f"{t.number:04d}" / "config.json").read_text()
        )
        assert config["train_config"]["seed"] == 1  # trained with its own seed
    confirmed = study.user_attrs["confirmation"]
    seeds = {}
    for t in trials:
        seeds.setdefault(t.user_attrs["plan"], set()).add(t.user_attrs["seed"])
    assert confirmed and all(seeds[p] == {0, 1} for p in confirmed)
    again = run_ray(cfg, tmp_path / "rep", RayOptions(max_concurrent=1, **QUIET))
    assert len(again.trials) == len(trials)  # a rerun queues and trains nothing


def test_rerun_of_a_finished_ray_study_runs_nothing(ray_runtime, sequential_study):
    folder, study = sequential_study
    before = [(t.number, t.state, t.values) for t in study.trials]
    again = run_ray(_cfg("seq", n_trials=5), folder, RayOptions(max_concurrent=1, **QUIET))
    assert [(t.number, t.state, t.values) for t in again.trials] == before
    assert again.user_attrs["ray_runs"] == study.user_attrs["ray_runs"]


def test_more_gpus_per_trial_than_the_cluster_has_is_refused(ray_runtime, tmp_path):
    with pytest.raises(
        ValueError, match=r"asks for 0.5 GPU \(--gpus-per-trial\) but the Ray cluster has 0"
    ):
        run_ray(_cfg("gpu"), tmp_path / "gpu", RayOptions(gpus_per_trial=0.5, **QUIET))


def test_resume_without_a_previous_ray_run_is_refused(ray_runtime, tmp_path):
    with pytest.raises(ValueError, match="has no Ray run to resume"):
        run_ray(_cfg("none"), tmp_path / "none", RayOptions(resume=True, **QUIET))


def _die_after_first_epoch_once(config, data, study, folder):
    """train_trial whose worker process dies right after its first reported epoch, once per study."""
    marker = pathlib.Path(folder) / "worker-died"
    if tune.get_checkpoint() is None and not marker.exists():
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            real_report = tune.report

            def report_then_die(metrics, checkpoint=None):
                real_report(metrics, checkpoint=checkpoint)
                os._exit(1)  # no exception, no cleanup: as a killed or lost worker

            tune.report = report_then_die  # this process dies, so the patch dies with it
    train_trial(config, data, study, folder)


def test_a_trial_whose_worker_dies_is_retried_from_its_checkpoint(ray_runtime, tmp_path):
    folder = tmp_path / "dies"
    cfg = _cfg("dies", n_trials=2, early_stopping={"enabled": False})
    study = run_ray(
        cfg,
        folder,
        RayOptions(max_concurrent=2, max_failures=1, **QUIET),
        trainable=_die_after_first_epoch_once,
    )
    assert (folder / "worker-died").exists()
    assert study_counts(study)["complete"] == 2 and all(
        t.state == TrialState.COMPLETE for t in study.trials
    )
    retried = [t for t in study.trials if t.user_attrs.get("resumed_from_epoch")]
    assert len(retried) == 1 and retried[0].user_attrs["resumed_from_epoch"] == 1
    record = json.loads(
        (folder / "trials" / f"{retried[0].number:04d}" / "trial.json").read_text()
    )
    assert (
        len(retried[0].user_attrs["curve"]) == len(record["result"]["history"]) == 3
    )  # every epoch, once


_DRIVER = """
import logging, sys, optuna, ray
from nas.config import StudyConfig
from nas.ray_backend import RayOptions, run_ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR)
run_ray(StudyConfig.from_dict(__import__("json").loads(sys.argv[2])), sys.argv[3], RayOptions(max_concurrent=2, verbose=0))
"""


def _wait_for(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def test_a_killed_ray_run_is_restored_and_finishes_its_trials(ray_runtime, tmp_path):
    folder = tmp_path / "killed"
    # Epochs of about half a second, six of them: room to kill the driver mid-trial.
    cfg = _cfg(
        "killed",
        n_trials=4,
        recipe={"epochs": 6},
        early_stopping={"enabled": False},
        data=TINY_DATA | {"synthetic_train": 1000},
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, ray_runtime, json.dumps(cfg.to_dict()), str(folder)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def progressed() -> bool:
            if driver.poll() is not None:
                raise AssertionError(f"the driver ended early: {driver.stderr.read()[-2000:]}")
            if not (folder / "journal.log").exists():
                return False
            trials = _load(folder, "killed").trials
            return any(t.state.is_finished() for t in trials) and any(
                t.state == TrialState.RUNNING and len(t.user_attrs.get("curve", [])) == 2
                for t in trials
            )

        _wait_for(progressed, 600, "a finished trial and a running one two epochs in")
        # Kill mid-epoch. Ray saves its run state when a trial checkpoints (every epoch here), so
        # a trial two epochs in is in it; a kill at the very moment Ray replaces a checkpoint by
        # the next could still lose one (see below), and the test does not aim at that moment.
        time.sleep(0.2)
    finally:
        driver.kill()  # SIGKILL: no chance to save anything more
        driver.wait()
    # The driver may have died holding the journal's lock; Optuna frees such a lock after 30 s, the
    # test does not wait for that (the holder is dead, so removing it is what Optuna will do).
    (folder / "journal.log.lock").unlink(missing_ok=True)
    interrupted = {
        t.number for t in _load(folder, "killed").trials if t.state == TrialState.RUNNING
    }
    assert interrupted

    try:
        study = run_ray(cfg, folder, RayOptions(resume=True, max_concurrent=2, **QUIET))
    except RayRunInterrupted:
        # Seen once in about ten runs (2026-12-05): the restored Tune run ended short of its
        # samples while the study had free slots, so run_ray took it for interrupted. A user
        # resumes again; so does the test (it must not end pytest's session: the exception is a
        # KeyboardInterrupt), and the second resume must finish the study.
        study = run_ray(cfg, folder, RayOptions(resume=True, max_concurrent=2, **QUIET))
    counts = study_counts(study)
    assert counts["complete"] == 4 and counts["running"] == 0, counts
    assert len({t.number for t in study.trials}) == len(study.trials)
    runs = study.user_attrs["ray_runs"]
    continued = [
        t for t in study.trials if t.number in interrupted and t.state == TrialState.COMPLETE
    ]
    assert continued and {t.user_attrs["ray_run"] for t in continued} == {runs[0]["name"]}, (
        "no trial running at the kill was continued by the restored run"
    )
    # A kill can lose a trial: one whose previous checkpoint Ray had just replaced (a known Ray Tune
    # window with CheckpointConfig(num_to_keep)), or one asked after Ray's last saved state that Ray
    # does not resume. Lost trials are failed with a reason, never left RUNNING, and a new Ray run
    # fills their slots.
    lost = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(
        re.search(
            r"died|the Ray trial errored|lost by an interrupted Ray run", t.user_attrs["reason"]
        )
        for t in lost
    ), [t.user_attrs["reason"] for t in lost]
    for t in study.trials:
        if t.state == TrialState.COMPLETE and t.user_attrs["status"] == "complete":
            assert len(t.user_attrs["curve"]) == 6
        if t.user_attrs.get("status") == "duplicate":
            assert "curve" not in t.user_attrs  # as on the Optuna backend


def test_ctrl_c_stops_the_run_and_resume_continues_it_from_its_checkpoints(ray_runtime, tmp_path):
    folder = tmp_path / "ctrlc"
    cfg = _cfg(
        "ctrlc",
        n_trials=2,
        recipe={"epochs": 4},
        early_stopping={"enabled": False},
        data=TINY_DATA | {"synthetic_train": 1000},
    )  # epochs of about half a second

    def interrupt_after_two_epochs() -> None:
        # Ray registers an epoch's checkpoint before it lets the trial run the next epoch: after
        # two reported epochs, the first one's checkpoint is in the run state a stop saves.
        def two_epochs() -> bool:
            return (folder / "journal.log").exists() and any(
                t.state == TrialState.RUNNING and len(t.user_attrs.get("curve", [])) >= 2
                for t in _load(folder, "ctrlc").trials
            )

        _wait_for(two_epochs, 600, "two reported epochs")
        os.kill(
            os.getpid(), signal.SIGUSR1
        )  # Tune's Ctrl+C handler (SIGINT would also reach pytest)

    watcher = threading.Thread(target=interrupt_after_two_epochs, daemon=True)
    watcher.start()
    with pytest.raises(RayRunInterrupted) as info:
        run_ray(cfg, folder, RayOptions(max_concurrent=1, **QUIET))
    watcher.join()
    assert (
        isinstance(info.value, KeyboardInterrupt)
        and info.value.path == _load(folder, "ctrlc").user_attrs["ray_runs"][-1]["path"]
    )
    stopped = [t.number for t in _load(folder, "ctrlc").trials if t.state == TrialState.RUNNING]
    assert len(stopped) == 1  # Ray stopped it mid-way; the study still holds it as running

    study = run_ray(cfg, folder, RayOptions(resume=True, max_concurrent=1, **QUIET))
    assert study_counts(study)["complete"] == 2 and all(
        t.state == TrialState.COMPLETE for t in study.trials
    )
    assert (
        study.trials[stopped[0]].user_attrs["resumed_from_epoch"] >= 1
    )  # from its checkpoint, not from scratch
    assert all(
        len(t.user_attrs["curve"]) == 4
        for t in study.trials
        if t.user_attrs["status"] == "complete"
    )


def _never_starts(config, data, study, folder):
    raise OSError("injected: the worker cannot read its data")


def test_a_run_whose_every_trial_fails_stops_with_the_reason(ray_runtime, tmp_path):
    with pytest.raises(
        RuntimeError,
        match=r"every trial of Ray run fails-\S+ failed \(last: the Ray trial errored",
    ):
        run_ray(
            _cfg("fails", n_trials=2),
            tmp_path / "fails",
            RayOptions(max_failures=0, **QUIET),
            trainable=_never_starts,
        )
    study = _load(tmp_path / "fails", "fails")
    assert [t.state for t in study.trials] == [
        TrialState.FAIL
    ] * 2  # recorded, not left running, not retried


def test_the_command_line_runs_a_ray_study_and_writes_its_report(tmp_path):
    args = [
        sys.executable,
        str(REPO / "search.py"),
        "study",
        "cli",
        "--backend",
        "ray",
        "--preset",
        "smoke",
        "--n-trials",
        "2",
        "--epochs",
        "2",
        "--train-subset",
        "200",
        "--image-size",
        "12",
        "--device",
        "cpu",
        "--results-dir",
        str(tmp_path),
        "--max-concurrent",
        "2",
        "--cpus-per-trial",
        "1",
        *ONE_RUN_FLAGS,
        "--quiet",
    ]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Ray backend (local runtime, 1 CPU and 0 GPU per trial)" in done.stdout
    assert (tmp_path / "cli" / "report" / "index.html").is_file()
    study = _load(tmp_path / "cli", "cli")
    trained = [t for t in study.trials if t.user_attrs["status"] != "duplicate"]
    assert len(trained) == 2 and all(t.user_attrs["backend"] == "ray" for t in study.trials)
    # --resume with nothing interrupted: the last run is restored, finds nothing to do, exit 0
    again = subprocess.run(
        args + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(_load(tmp_path / "cli", "cli").trials) == len(study.trials)


def test_the_driver_refreshes_the_heartbeat_of_its_runs_trials(tmp_path):
    """A pending Ray trial reports nothing: the driver's heartbeat keeps it from being taken
    for a dead worker's by another process sharing the storage."""
    from nas.ray_backend import refresh_heartbeats
    from nas.storage import STALE_AFTER_S, fail_stale_trials, open_study

    study = open_study("s", open_storage(tmp_path))
    old = {"host": "elsewhere", "pid": 1, "heartbeat": time.time() - STALE_AFTER_S - 5}
    for run in ("this-run", "other-run"):
        study.enqueue_trial({}, user_attrs={"ray_run": run, "worker": old})
        study.ask()
    assert refresh_heartbeats(study, "this-run") == 1
    assert fail_stale_trials(study) == [1]  # the other run's trial is a dead worker's
    assert study.trials[0].state == TrialState.RUNNING  # this run's is alive
