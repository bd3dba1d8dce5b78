"""Fault injection: trials that fail in every way, dead workers, bad files, full disks, bad flags."""

import errno
import json
import os
import subprocess
import sys

import pytest
import torch
from optuna.trial import TrialState

import nas.trial as trial_module
import search
from nas.config import StudyConfig
from nas.optuna_backend import run_study
from nas.study import open_existing, study_counts
from softshare.checkpoint import CheckpointError, load_checkpoint
from tests import REPO
from tests.studies import ONE_RUN, make_study, smoke_cfg


def _cfg(name="f", **kw):
    base = dict(n_trials=5, baselines="paper", early_stopping={"enabled": False})
    return smoke_cfg(name, **(base | ONE_RUN | kw))


@pytest.mark.slow
def test_failing_trials_are_recorded_with_reasons_and_the_study_goes_on(tmp_path, monkeypatch):
    real_train = trial_module.train
    calls = {"n": 0}

    def faulty_train(model_config, cfg, data, **kw):
        calls["n"] += 1
        if calls["n"] == 1:  # diverges: a learning rate that blows the loss up
            return real_train(
                model_config, type(cfg).from_dict(cfg.to_dict() | {"lr": 1e12}), data, **kw
            )
        if calls["n"] == 2:
            raise RuntimeError("injected failure inside the training loop")
        if calls["n"] == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_train(model_config, cfg, data, **kw)

    monkeypatch.setattr(trial_module, "train", faulty_train)
    study = run_study(_cfg(n_trials=2, space={"depths": [16], "widths": [1]}), tmp_path / "f")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    reasons = [t.user_attrs["reason"] for t in failed]
    assert any(r.startswith("diverged: non-finite training loss") for r in reasons), reasons
    assert any(r == "RuntimeError: injected failure inside the training loop" for r in reasons), (
        reasons
    )
    assert any(r.startswith("out of GPU memory") and "Tried to allocate" in r for r in reasons), (
        reasons
    )
    assert (
        study_counts(study)["complete"] + study_counts(study)["pruned"] == 2
    )  # the study went on
    for t in failed:
        assert (
            json.loads((tmp_path / "f" / "trials" / f"{t.number:04d}" / "trial.json").read_text())[
                "status"
            ]
            == "failed"
        )
    assert (
        "Traceback"
        in (tmp_path / "f" / "trials" / f"{failed[1].number:04d}" / "error.txt").read_text()
    )


@pytest.mark.slow
def test_same_seed_on_cpu_gives_the_same_trials_and_metrics(tmp_path):
    cfg = _cfg(n_trials=4, early_stopping={}, sampler="tpe")
    a = run_study(cfg, tmp_path / "a")
    b = run_study(cfg, tmp_path / "b")
    key = lambda s: [(t.params, t.state, t.values, t.user_attrs.get("curve")) for t in s.trials]  # noqa: E731
    assert key(a) == key(b)


@pytest.mark.slow
def test_four_workers_creating_one_new_storage_at_once(tmp_path):
    args = [
        sys.executable,
        str(REPO / "search.py"),
        "study",
        "race",
        "--results-dir",
        str(tmp_path),
        "--n-trials",
        "6",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--dataset",
        "synthetic",
        "--image-size",
        "12",
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    _, study = open_existing(tmp_path / "race")
    counts = study_counts(study)
    assert counts["running"] == 0 and counts["failed"] == 0
    # four processes, one journal: the slot lock keeps them to n_trials exactly
    assert counts["complete"] + counts["pruned"] == 6, counts
    assert len({t.number for t in study.trials}) == len(study.trials)


@pytest.mark.slow
def test_disk_full_while_checkpointing_gives_one_line_and_no_corrupt_file(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    args = [
        "train",
        "--dataset",
        "synthetic",
        "--synthetic-train",
        "100",
        "--image-size",
        "12",
        "--depth",
        "10",
        "--arch",
        "wrn",
        "--width",
        "1",
        "--epochs",
        "3",
        "--batch-size",
        "50",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
    ]
    real_fsync, calls = os.fsync, {"n": 0}

    def disk_fills_after_epoch_one(fd):
        # config.json, then checkpoint and metrics of epoch 1 (model_best.pt is a hard link
        # of that checkpoint: no write of its own)
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_fills_after_epoch_one)
    code = search.main(args)
    monkeypatch.setattr(os, "fsync", real_fsync)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == search.EXIT_IO and len(err) == 1, err
    assert "No space left on device" in err[0] and "free space there and re-run" in err[0], err
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1  # the last good one is intact
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert search.main(args + ["--resume"]) == 0  # and the run continues from it
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3


def test_unwritable_results_folder_gives_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = search.main(["study", "x", "--results-dir", str(blocker), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(blocker) in err[0]


def test_truncated_and_foreign_checkpoints_are_refused_by_the_cli(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04garbage")
    assert search.main(["evaluate", str(bad)]) == 2
    assert "is not a readable checkpoint" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    assert search.main(["evaluate", str(tmp_path / "foreign.pt")]) == 2
    assert "not a softshare checkpoint" in capsys.readouterr().err
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (lambda p: p.write_text("{ not json"), "is damaged and cannot be read as JSON"),
        (
            lambda p: p.write_text(json.dumps(json.loads(p.read_text()) | {"format_version": 99})),
            "format version 99",
        ),
        (
            lambda p: p.write_text(json.dumps(json.loads(p.read_text()) | {"colour": "red"})),
            "unknown study config keys",
        ),
        (
            lambda p: p.write_text(json.dumps(json.loads(p.read_text()) | {"preset": "huge"})),
            "unknown preset 'huge'",
        ),
        (lambda p: p.unlink(), "no study.json"),
    ],
)
def test_hand_edited_study_folder_gives_one_line(tmp_path, capsys, edit, fragment):
    folder = make_study(tmp_path / "s", [("WRN-10-1", 0.5, "COMPLETE", {})])
    edit(folder / "study.json")
    for command in (
        ["retrain", str(folder), "--epochs", "1"],
        ["study", "s", "--results-dir", str(tmp_path)],
    ):
        assert search.main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], err


def test_empty_study_and_unknown_trial_give_one_line(tmp_path, capsys):
    empty = make_study(tmp_path / "e", [("WRN-10-1", None, "FAIL", {"reason": "x"})])
    assert search.main(["retrain", str(empty), "--epochs", "1"]) == 2
    assert "no completed trial" in capsys.readouterr().err
    full = make_study(tmp_path / "f", [("WRN-10-1", 0.5, "COMPLETE", {})])
    assert search.main(["retrain", str(full), "--pick", "trial:7", "--epochs", "1"]) == 2
    assert "no trial 7" in capsys.readouterr().err


BAD_FLAGS = [
    ["model", "SWRN-17-1-1"],
    ["model", "WRN-16-4", "--classes", "0"],
    ["train", "--epochs", "-1"],
    ["train", "--batch-size", "x"],
    ["train", "--lr", "0"],
    ["train", "--lr", "nan"],
    ["train", "--momentum", "1.5"],
    ["train", "--weight-decay", "-1"],
    ["train", "--milestones", "a,b"],
    ["train", "--schedule", "linear"],
    ["train", "--cutout", "-4"],
    ["train", "--precision", "fp8"],
    ["train", "--device", "tpu", "--dataset", "synthetic"],
    ["train", "--device", "cuda:0", "--dataset", "synthetic"],
    ["train", "--arch", "resnet"],
    ["train", "--plan", "16-4:3/2/2", "--dataset", "synthetic"],
    ["train", "--dataset", "svhn"],
    ["train", "--dataset", "folder:/nonexistent/x"],
    ["train", "--data", "/nonexistent"],
    ["train", "--val-fraction", "0.95"],
    ["train", "--train-subset", "0"],
    ["train", "--seed", "-3"],
    ["train", "--image-size", "4"],
    ["study", "bad name!"],
    ["study", "x", "--preset", "huge"],
    ["study", "x", "--sampler", "cmaes"],
    ["study", "x", "--n-trials", "0"],
    ["study", "x", "--workers", "0"],
    ["study", "x", "--max-params", "1.5"],
    ["study", "x", "--eta", "1"],
    ["study", "x", "--min-epochs", "0"],
    ["study", "x", "--patience", "0"],
    ["study", "x", "--val-fraction", "0"],
    ["study", "x", "--space", "/nonexistent.toml"],
    ["study", "x", "--dataset", "cifar10", "--data", "/nonexistent"],
    ["study", "x", "--backend", "spark"],
    ["study", "x", "--cpus-per-trial", "0"],
    ["study", "x", "--gpus-per-trial", "-1"],
    ["study", "x", "--backend", "ray", "--gpus-per-trial", "1.5"],
    ["study", "x", "--max-concurrent", "0"],
    ["study", "x", "--max-failures", "-1"],
    ["study", "x", "--resume"],
    ["study", "x", "--gpus-per-trial", "1"],
    ["study", "x", "--backend", "ray", "--workers", "2"],
    ["study", "x", "--fidelity", "warm"],
    ["study", "x", "--inherit-epochs", "0"],
    ["study", "x", "--inherit-epochs", "1.5"],
    ["study", "x", "--inherit-lr", "0"],
    ["study", "x", "--inherit-lr", "-0.1"],
    ["retrain", "/nonexistent"],
    ["retrain", "/tmp", "--seeds", "0"],
    ["retrain", "/tmp", "--pick", "worst"],
    ["retrain", "/nonexistent", "--from-parent"],
    ["evaluate", "/nonexistent.pt"],
    ["evaluate", "x.pt", "--split", "train"],
    ["fold", "/nonexistent.pt"],
    ["fold", "x.pt", "--threshold", "1.5"],
    ["frobnicate"],
]


@pytest.mark.parametrize("args", BAD_FLAGS, ids=[" ".join(a) for a in BAD_FLAGS])
def test_every_bad_flag_gives_one_line_and_nonzero_exit(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    try:
        code = search.main(args)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert code not in (0, None) and len(lines) == 1 and "error" in lines[0], lines
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


# --- a journal whose writer died mid-append ------------------------------------------------------

_THREE = [("WRN-16-1", 0.5, "COMPLETE", {}), ("SWRN-16-1-1", 0.6, "COMPLETE", {})]
_THREE.append(("SWRN-16-1-2", 0.55, "PRUNED", {}))


def _journal_of(folder):
    return folder / "journal.log"


def test_a_cut_off_journal_resumes_from_its_last_whole_record(tmp_path, caplog):
    folder = make_study(tmp_path / "cut", _THREE)
    whole = _journal_of(folder).read_bytes()
    _journal_of(folder).write_bytes(whole + b'{"op_code":5,"worker_id":"w","trial_id":3,"us')
    with caplog.at_level("WARNING", logger="nas.storage"):
        _, study = open_existing(folder)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    said = [r.getMessage() for r in caplog.records if r.name == "nas.storage"]
    assert len(said) == 1 and "cut off mid-write" in said[0] and "damaged file is kept" in said[0]
    copies = list(folder.glob("journal.log.damaged-*"))
    assert len(copies) == 1 and copies[0].read_bytes().startswith(whole)
    assert _journal_of(folder).read_bytes() == whole
    # the study goes on: a new trial is recorded and read back by a fresh process's view
    study.enqueue_trial({"depth": 16})
    assert len(open_existing(folder)[1].trials) == 4
    caplog.clear()
    with caplog.at_level("WARNING", logger="nas.storage"):
        open_existing(folder)
    assert not caplog.records  # mended once; a whole journal is left alone


def test_a_record_glued_after_a_cut_off_one_is_kept(tmp_path):
    folder = make_study(tmp_path / "glued", _THREE)
    whole = _journal_of(folder).read_bytes()
    lines = whole.splitlines(keepends=True)
    # a writer died mid-append, then the next append (the last record) was glued to its fragment
    damaged = b"".join(lines[:-1]) + b'{"op_code":5,"worker_id":"w","trial_id":2,"us' + lines[-1]
    _journal_of(folder).write_bytes(damaged)
    _, study = open_existing(folder)
    assert _journal_of(folder).read_bytes() == whole
    assert [t.state for t in study.trials][-1] == TrialState.PRUNED


@pytest.mark.slow
def test_the_cli_resumes_a_cut_off_journal_with_one_line(tmp_path, search_cli):
    folder = make_study(tmp_path / "cli", _THREE)
    with open(_journal_of(folder), "ab") as f:
        f.write(b'{"op_code":6,"worker_id":"w","trial_id":2,"sta')
    done = search_cli("report", str(folder), timeout=120)
    assert done.returncode == 0, done.stderr
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "cut off mid-write" in err[0], err


def test_a_worker_in_another_pid_namespace_is_judged_by_its_heartbeat(monkeypatch):
    """Two containers may share a hostname but not their PIDs: a pid alive here may be any
    process there, so a worker of another PID namespace is alive while its heartbeat is fresh."""
    import time

    import nas.storage as storage

    me = storage.worker_identity()
    assert me["pidns"] == storage._pid_namespace()
    assert storage._worker_alive(me)  # ourselves
    other = me | {"pidns": "pid:[1]"}  # same host, same (live) pid number, another namespace
    assert storage._worker_alive(other | {"heartbeat": time.time()})
    assert not storage._worker_alive(
        other | {"heartbeat": time.time() - storage.STALE_AFTER_S - 1}
    )
    dead_here = me | {"pid": 2**22 + 7}  # our namespace: the pid decides, not the heartbeat
    assert not storage._worker_alive(dead_here)


@pytest.mark.parametrize(
    "url,fragment",
    [
        ("sqlite:////nonexistent/folder/study.db", "check that the database file's folder exists"),
        ("nosuch://host/db", "accepted: sqlite:///PATH, postgresql://"),
        ("postgresql+psycopg2://nas:hunter2@127.0.0.1:1/nas", "check that the server is running"),
    ],
    ids=["sqlite-unopenable", "unknown-kind", "nothing-listening"],
)
def test_a_storage_url_that_cannot_be_opened_gives_one_line(tmp_path, capsys, url, fragment):
    code = search.main(["study", "x", "--results-dir", str(tmp_path), "--storage", url, "--quiet"])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "cannot open the storage" in err[0] and fragment in err[0], err
    assert "hunter2" not in captured.err + captured.out  # the password is never printed


def _killed_by(script: str, cfg: StudyConfig, folder) -> None:
    """Run ``script`` (argv: the config as JSON, the study folder) in a process that kills itself."""
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cfg.to_dict()), str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 137, done.stderr


_KILL_BEFORE_TELL = """
import os, sys
import nas.optuna_backend as backend
from nas.config import StudyConfig

real = backend.finish


def killed_before_the_tell(ctx, ended):
    if ctx.number == 1:  # trained to its end; the process dies before the study is told
        os._exit(137)
    return real(ctx, ended)


backend.finish = killed_before_the_tell
cfg = StudyConfig.from_dict(__import__("json").loads(sys.argv[1]))
backend.run_study(cfg, __import__("pathlib").Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_trial_trained_but_untold_is_recovered_not_trained_again(tmp_path):
    cfg = _cfg(
        n_trials=3, space={"depths": [16], "widths": [1]}, early_stopping={"enabled": False}
    )
    folder = tmp_path / "untold"
    _killed_by(_KILL_BEFORE_TELL, cfg, folder)
    _, study = open_existing(folder)
    assert study.trials[1].state == TrialState.RUNNING  # the dead worker's, untold
    metrics = json.loads((folder / "trials" / "0001" / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    study = run_study(cfg, folder)  # the resume
    one = study.trials[1]
    assert one.state == TrialState.COMPLETE and one.user_attrs.get("recovered")
    assert one.values[0] == metrics["best_val_acc"] and one.user_attrs["status"] == "complete"
    assert len(one.user_attrs["curve"]) == metrics["epochs_run"]
    assert (folder / "trials" / "0001" / "trial.json").is_file()
    trained = [t.user_attrs["plan"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(trained) == len(set(trained)) == 3  # none trained twice, the total reached


_KILL_AFTER_ASK = """
import os, sys, json, pathlib
import nas.optuna_backend as backend
from nas.config import StudyConfig
from nas.storage import open_storage, open_study
from nas.study import prepare_study

cfg = StudyConfig.from_dict(json.loads(sys.argv[1]))
folder = pathlib.Path(sys.argv[2])
prepare_study(cfg, folder)
study = open_study(cfg.name, open_storage(folder))
backend._take_slot(study, cfg.n_trials, folder)
os._exit(137)  # killed right after taking the slot, before anything else is recorded
"""


@pytest.mark.slow
def test_a_worker_killed_right_after_taking_a_slot_gives_it_back_at_once(tmp_path):
    cfg = _cfg(n_trials=2, space={"depths": [16], "widths": [1]}, baselines="none")
    folder = tmp_path / "asked"
    _killed_by(_KILL_AFTER_ASK, cfg, folder)
    _, study = open_existing(folder)
    orphan = study.trials[0]
    assert orphan.state == TrialState.RUNNING and orphan.user_attrs["worker"]["pid"] > 0
    study = run_study(cfg, folder)  # at once: no STALE_AFTER_S wait for the orphan's slot
    counts = study_counts(study)
    assert counts["complete"] + counts["pruned"] == 2 and counts["failed"] == 1, counts
    assert "died" in study.trials[0].user_attrs["reason"]


@pytest.mark.slow
def test_a_disk_that_fills_mid_study_ends_it_with_one_line_and_the_resume_finishes(
    tmp_path, monkeypatch, capsys
):
    args = ["study", "full", "--results-dir", str(tmp_path), "--n-trials", "3", "--epochs", "2"]
    args += ["--dataset", "synthetic", "--image-size", "12", "--device", "cpu", "--quiet"]
    args += ["--no-early-stopping", "--baselines", "none"]
    real_fsync, calls = os.fsync, {"n": 0}

    def disk_fills_in_trial_two(fd):
        if "checkpoint.pt" in os.readlink(f"/proc/self/fd/{fd}"):
            calls["n"] += 1
            if calls["n"] == 2 * 2 + 1:  # two trials of 2 epochs, then the third's first
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_fills_in_trial_two)
    code = search.main(args)
    monkeypatch.setattr(os, "fsync", real_fsync)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == search.EXIT_IO and len(err) == 1 and "No space left" in err[0], err
    _, study = open_existing(tmp_path / "full")
    assert [t.state for t in study.trials][:2] == [TrialState.COMPLETE] * 2
    assert study.trials[2].state == TrialState.FAIL  # one trial, not one after another
    assert search.main(args) == 0  # the disk is back: the resume fills the slot
    counts = study_counts(open_existing(tmp_path / "full")[1])
    assert counts["complete"] == 3 and counts["failed"] == 1, counts


def test_study_json_never_holds_the_storage_password(tmp_path):
    from nas.config import load_study_config, save_study_config
    from nas.storage import storage_failure

    cfg = StudyConfig(name="pw", storage="postgresql+psycopg2://nas:hunter2@db.example:5432/nas")
    written = save_study_config(cfg, tmp_path)
    assert written.storage == cfg.storage  # this process keeps it, to open the server now
    assert "hunter2" not in (tmp_path / "study.json").read_text()
    stored = load_study_config(tmp_path).storage
    assert stored == "postgresql+psycopg2://nas@db.example:5432/nas"
    # opening the stored URL later says where the password is to come from
    line = storage_failure(stored, ConnectionError("password authentication failed"))
    assert "PGPASSWORD" in line and "--storage" in line
    assert "PGPASSWORD" not in storage_failure(cfg.storage, ConnectionError("refused"))
