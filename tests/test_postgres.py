"""Several `search.py study` processes on different machines share one study through a real
PostgreSQL server (`--storage postgresql://...`): every trial is recorded once."""

import json
import os
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from nas.study import study_counts
from tests import REPO
from tests.pg_server import postgres_server, server_bin_dir

N_TRIALS = 6

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        server_bin_dir() is None,
        reason="PostgreSQL server binaries are not installed (CI installs Debian's postgresql package in .ci/run)",
    ),
]


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


def _worker(results_dir, url):
    """One `search.py study` process; its own results folder, as on a machine of its own."""
    args = [
        sys.executable,
        str(REPO / "search.py"),
        "study",
        "pg",
        "--storage",
        url,
        "--preset",
        "smoke",
        "--results-dir",
        str(results_dir),
        "--n-trials",
        str(N_TRIALS),
        "--epochs",
        "2",
        "--train-subset",
        "200",
        "--image-size",
        "12",
        "--device",
        "cpu",
        "--quiet",
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # two processes share 2 cores
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_worker_processes_share_one_study_and_record_every_trial_once(pg_url, tmp_path):
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    procs = [_worker(m, pg_url) for m in machines]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in outs]

    study = optuna.load_study(study_name="pg", storage=pg_url)
    counts = study_counts(study)
    assert counts["running"] == 0 and counts["waiting"] == 0 and counts["failed"] == 0, counts
    # Counting the free slots and taking one is one step under the server's advisory lock: the
    # two never both take the last one (a file lock in each machine's own folder let them).
    assert counts["complete"] + counts["pruned"] == N_TRIALS, counts
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers)))  # distinct, no gaps
    assert len({t._trial_id for t in study.trials}) == len(study.trials)
    pids = {t.user_attrs["worker"]["pid"] for t in study.trials}
    assert pids == {p.pid for p in procs}, "both workers ran trials of the one study"

    trained = [t for t in study.trials if t.user_attrs["status"] in ("complete", "pruned")]
    assert trained
    for t in trained:  # its folder is on the machine that ran it, and only there
        holders = [
            m
            for m in machines
            if (m / "pg" / "trials" / f"{t.number:04d}" / "trial.json").is_file()
        ]
        assert len(holders) == 1, (t.number, holders)
        record = json.loads(
            (holders[0] / "pg" / "trials" / f"{t.number:04d}" / "trial.json").read_text()
        )
        assert (
            record["trial"] == t.number
            and record["attrs"]["worker"]["pid"] == t.user_attrs["worker"]["pid"]
        )
        assert record["status"] == t.user_attrs["status"]
    for t in study.trials:
        if t.state == TrialState.COMPLETE:
            assert t.values[1] == t.user_attrs["params"]


def _take_the_last_slot(url, folder, n_trials, barrier, out):
    """A worker of its own machine (its own results folder) taking a slot of study "race", with
    two seconds between counting the free slots and taking one."""
    import nas.optuna_backend as backend
    from nas.storage import open_storage, open_study

    counted = backend.slots_left

    def slow_count(study, n):
        left = counted(study, n)
        time.sleep(2.0)  # the window in which another machine counts the same free slot
        return left

    backend.slots_left = slow_count
    study = open_study("race", open_storage(folder, url))
    barrier.wait(timeout=120)
    trial = backend._take_slot(study, n_trials, folder)
    out.put(None if trial is None else trial.number)


def test_two_machines_racing_for_the_last_slot_take_it_once(pg_url, tmp_path):
    """Two processes with separate results folders (two machines) on one real PostgreSQL server
    ask for the study's last free slot at the same moment: one gets it, the other none. With the
    slot lock a file in each machine's own folder, both took it and the study overshot."""
    import multiprocessing

    from optuna.distributions import CategoricalDistribution

    from nas.storage import open_storage, open_study

    study = open_study("race", open_storage(tmp_path, pg_url))
    for value in (0, 1):  # two of the three slots taken
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                values=[0.5, 100.0],
                params={"x": value},
                distributions={"x": CategoricalDistribution([0, 1])},
                user_attrs={"status": "complete"},
            )
        )
    for k in range(2):
        (tmp_path / f"m{k}").mkdir()
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.SimpleQueue()
    procs = [
        ctx.Process(target=_take_the_last_slot, args=(pg_url, tmp_path / f"m{k}", 3, barrier, out))
        for k in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0]
    taken = sorted((out.get() for _ in procs), key=lambda n: -1 if n is None else n)
    assert taken == [None, 2], taken  # one took trial 2, the other found no slot
    assert len(study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))) == 1


def test_a_stopped_server_gives_one_line_and_writes_nothing(tmp_path, capsys):
    import search

    with postgres_server("gone") as url:
        pass  # started, then stopped and deleted: the URL points at a server that is not there
    code = search.main(["study", "x", "--results-dir", str(tmp_path), "--storage", url, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "cannot open the storage" in err[0] and "check that the server is running" in err[0]
    assert not list((tmp_path / "x").glob("journal.log"))


def test_the_study_folder_keeps_no_password_and_a_resume_still_opens_the_server(
    pg_url, tmp_path, monkeypatch
):
    """study.json is a results file (copied, shared, committed): the password stays out of it.
    The test server trusts local users, so the password here is never checked, only carried."""
    from sqlalchemy.engine import make_url

    import search

    with_password = make_url(pg_url).set(password="hunter2").render_as_string(hide_password=False)
    flags = ["--results-dir", str(tmp_path), "--quiet", "--n-trials", "1", "--epochs", "1"]
    flags += ["--train-subset", "100", "--image-size", "8", "--device", "cpu"]
    code = search.main(["study", "nopw", "--storage", with_password, *flags])
    assert code == 0
    saved = (tmp_path / "nopw" / "study.json").read_text()
    assert "hunter2" not in saved
    assert json.loads(saved)["storage"] == make_url(pg_url).render_as_string(hide_password=False)
    # report and a resume open the study from study.json alone (here: trust; else PGPASSWORD)
    assert search.main(["report", str(tmp_path / "nopw")]) == 0
    assert search.main(["study", "nopw", *flags[:3], "--n-trials", "2"]) == 0
    assert study_counts(optuna.load_study(study_name="nopw", storage=pg_url))["complete"] >= 1


def test_no_password_is_stored_in_the_database_or_the_study_folder(pg_url, tmp_path, capsys):
    """The password of --storage is used, never written: not in the study's attributes (which
    optuna-dashboard shows to every user of the database), not in any row of any table, not in
    any file of the study folder, not in what the command prints."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    import search

    secret = "pw-Issue25-not-to-be-stored"
    with_password = make_url(pg_url).set(password=secret).render_as_string(hide_password=False)
    flags = ["--results-dir", str(tmp_path), "--quiet", "--n-trials", "1", "--epochs", "1"]
    flags += ["--train-subset", "100", "--image-size", "8", "--device", "cpu"]
    assert search.main(["study", "secret", "--storage", with_password, *flags]) == 0
    out = capsys.readouterr()
    assert secret not in out.out + out.err

    study = optuna.load_study(study_name="secret", storage=pg_url)
    assert study.user_attrs["config"]["storage"] == make_url(pg_url).render_as_string(
        hide_password=False
    )
    engine = sqlalchemy.create_engine(pg_url)
    try:
        meta = sqlalchemy.MetaData()
        meta.reflect(engine)
        assert "study_user_attributes" in meta.tables
        with engine.connect() as conn:
            for table in meta.tables.values():
                for row in conn.execute(table.select()):
                    assert secret not in repr(tuple(row)), (table.name, row)
    finally:
        engine.dispose()
    for path in (tmp_path / "secret").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
