"""Fault-injection suite: the slow scenarios, run for real, then a table of expected vs observed.

    python -m tests.fault_suite [--kills 3] [--trials 8]

Scenario 1 kills a study process with SIGKILL in the middle of a trial several times in a row,
resuming after each kill, and checks that every finished trial is kept, none is counted twice
and the total is reached. The fast scenarios (failing trials, full disk, bad files, bad flags,
concurrent workers, determinism) are the tests of tests/test_faults.py; their outcomes are
listed too.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import optuna

from nas.study import open_existing, study_counts
from tests import REPO


def _study_args(folder: pathlib.Path, trials: int) -> list[str]:
    return [
        sys.executable,
        str(REPO / "search.py"),
        "study",
        "k",
        "--results-dir",
        str(folder),
        "--n-trials",
        str(trials),
        "--epochs",
        "8",
        "--device",
        "cpu",
        "--quiet",
        "--dataset",
        "synthetic",
        "--image-size",
        "12",
        "--no-early-stopping",
    ]


def _kill_mid_trial(folder: pathlib.Path, trials: int, timeout: float = 300) -> dict[int, tuple]:
    """Start the study; SIGKILL it once this process has finished a trial of its own and trained
    an epoch of the next; return the trials finished at the kill. (The trial the previous kill
    interrupted is still RUNNING with a curve until the new process fails it: it does not count.)"""
    proc = subprocess.Popen(
        _study_args(folder, trials), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline, finished = time.time() + timeout, {}
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if not (folder / "k" / "journal.log").exists():
            continue
        _, study = open_existing(folder / "k")
        finished = {t.number: (t.state, t.values) for t in study.trials if t.state.is_finished()}
        mine = [t for t in study.trials if t.user_attrs.get("worker", {}).get("pid") == proc.pid]
        if any(
            t.state.is_finished() and t.user_attrs.get("status") != "failed" for t in mine
        ) and any(
            t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("curve") for t in mine
        ):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return finished


def kill_scenario(kills: int, trials: int) -> tuple[str, str, str, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        kept: dict[int, tuple] = {}
        for _ in range(kills):
            kept |= _kill_mid_trial(folder, trials)
        done = subprocess.run(
            _study_args(folder, trials), cwd=REPO, capture_output=True, text=True, timeout=600
        )
        _, study = open_existing(folder / "k")
        counts = study_counts(study)
        lost = [n for n, v in kept.items() if (study.trials[n].state, study.trials[n].values) != v]
        died = sum(1 for t in study.trials if t.user_attrs.get("reason", "").endswith("died"))
        ok = (
            done.returncode == 0
            and not lost
            and died == kills
            and not counts["running"]
            and counts["complete"] + counts["pruned"] == trials
        )
        observed = (
            f"exit {done.returncode}; {len(kept)} finished before the kills, {len(lost)} changed; "
            f"{counts['complete'] + counts['pruned']}/{trials} done; {died} killed trials marked failed "
            f"(worker died); {counts['running']} left running"
        )
        return (
            f"study SIGKILLed mid-trial {kills}x in a row, then resumed",
            "finished trials kept, none twice, total reached",
            observed,
            ok,
        )


def _finished(folder: pathlib.Path) -> dict[int, tuple]:
    _, study = open_existing(folder / "k")
    return {t.number: (t.state, t.values) for t in study.trials if t.state.is_finished()}


def _resume(folder: pathlib.Path, trials: int, kept: dict[int, tuple]):
    """Re-run the study command to the end: (its process, trials of ``kept`` changed, counts)."""
    done = subprocess.run(
        _study_args(folder, trials), cwd=REPO, capture_output=True, text=True, timeout=600
    )
    after = _finished(folder)
    lost = [n for n, v in kept.items() if after.get(n) != v]
    return done, lost, study_counts(open_existing(folder / "k")[1])


def journal_scenario(trials: int) -> tuple[str, str, str, bool]:
    """Half the study, then a record cut off mid-write at the journal's end (a writer killed
    mid-append, or a full disk), then the rest of the study by re-running the command."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        half = subprocess.run(
            _study_args(folder, trials // 2), cwd=REPO, capture_output=True, text=True, timeout=600
        )
        kept = _finished(folder)
        journal = folder / "k" / "journal.log"
        with open(journal, "ab") as f:
            f.write(b'{"op_code":6,"worker_id":"w","trial_id":0,"state":1,"val')
        done, lost, counts = _resume(folder, trials, kept)
        said = [line for line in done.stderr.splitlines() if "cut off mid-write" in line]
        copies = list((folder / "k").glob("journal.log.damaged-*"))
        ok = (
            half.returncode == 0
            and done.returncode == 0
            and not lost
            and len(said) == 1
            and len(copies) == 1
            and counts["complete"] + counts["pruned"] == trials
        )
        observed = (
            f"exit {done.returncode}; {len(kept)} finished before the cut, {len(lost)} changed; "
            f"{counts['complete'] + counts['pruned']}/{trials} done; {len(said)} warning line(s); "
            f"{len(copies)} damaged copy kept"
        )
        return (
            "a journal record cut off mid-write, then the study resumed",
            "mended in one line, damaged file kept, finished trials kept, total reached",
            observed,
            ok,
        )


# A study process with a fault injected at the n-th fsync of a file whose name contains WHAT
# (every project file is written through softshare.checkpoint.atomic_write, which fsyncs it).
_INJECT = """
import errno, os, signal, sys
import search

what, at, fault = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real, seen = os.fsync, {"n": 0}


def fsync(fd):
    if what in os.readlink(f"/proc/self/fd/{fd}"):
        seen["n"] += 1
        if seen["n"] == at:
            if fault == "kill":  # SIGKILL with the new file written but not yet in place
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, "No space left on device")
    real(fd)


os.fsync = fsync
sys.exit(search.main(sys.argv[4:]))
"""


def _injected(folder: pathlib.Path, trials: int, what: str, at: int, fault: str):
    args = [sys.executable, "-c", _INJECT, what, str(at), fault, *_study_args(folder, trials)[2:]]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


def write_fault_scenario(trials: int, fault: str) -> tuple[str, str, str, bool]:
    """SIGKILL in the middle of a checkpoint write, or a disk that fills mid-study (ENOSPC at a
    checkpoint's fsync); then the same command again, with the disk back."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        # the 3rd trial's checkpoints: 8 epochs a trial, checkpoint.pt written every epoch
        hit = _injected(folder, trials, "checkpoint.pt", 8 * 2 + 3, fault)
        kept = _finished(folder)
        err = [line for line in hit.stderr.splitlines() if line.strip()]
        from softshare.checkpoint import load_checkpoint

        readable = all(
            load_checkpoint(path)["epoch"] >= 1
            for path in (folder / "k" / "trials").glob("*/checkpoint.pt")
        )
        done, lost, counts = _resume(folder, trials, kept)
        expected_exit = -9 if fault == "kill" else 74
        one_line = fault == "kill" or (len(err) == 1 and "No space left on device" in err[0])
        ok = (
            hit.returncode == expected_exit
            and one_line
            and readable
            and done.returncode == 0
            and not lost
            and counts["complete"] + counts["pruned"] == trials
        )
        observed = (
            f"exit {hit.returncode}"
            + ("" if fault == "kill" else f" with {len(err)} line(s)")
            + f"; every checkpoint left readable: {readable}; resumed: exit {done.returncode}, "
            f"{len(kept)} finished before, {len(lost)} changed, "
            f"{counts['complete'] + counts['pruned']}/{trials} done"
        )
        scenario = (
            "study SIGKILLed in the middle of a checkpoint write, then resumed"
            if fault == "kill"
            else "disk full mid-study (ENOSPC at a checkpoint write), then resumed"
        )
        expected = (
            "no checkpoint half-written, finished trials kept, total reached"
            if fault == "kill"
            else "one line, exit 74, no checkpoint half-written, finished trials kept, total reached"
        )
        return scenario, expected, observed, ok


def pid_namespace_scenario(trials: int) -> tuple[str, str, str, bool]:
    """Two workers in separate PID namespaces (``unshare --pid``: as two containers sharing a
    hostname) on one journal: the same small pids mean different processes in each."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return (
            "two workers in separate PID namespaces",
            "-",
            "not run (needs root, unshare)",
            True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        env = os.environ | {"OMP_NUM_THREADS": "1"}
        args = ["unshare", "--pid", "--fork", "--mount-proc", *_study_args(folder, trials)]
        procs = []
        for _ in range(2):  # a second apart: their process start times differ, as in real life
            procs.append(
                subprocess.Popen(
                    args,
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            time.sleep(1.5)
        errs = [p.communicate(timeout=900)[1] for p in procs]
        _, study = open_existing(folder / "k")
        counts = study_counts(study)
        workers = {(t.user_attrs.get("worker") or {}).get("pidns") for t in study.trials} - {None}
        died = sum(1 for t in study.trials if "died" in t.user_attrs.get("reason", ""))
        ok = (
            all(p.returncode == 0 for p in procs)
            and died == 0
            and counts["failed"] == 0
            and counts["complete"] + counts["pruned"] == trials
            and len(workers) == 2
        )
        observed = (
            f"exits {[p.returncode for p in procs]}; {counts['complete'] + counts['pruned']}/{trials} "
            f"done; {died} live trial(s) failed as dead; {len(workers)} PID namespaces seen"
            + (f"; stderr: {errs[0][-200:]}" if not ok else "")
        )
        return (
            "two workers in separate PID namespaces on one journal",
            "no live trial failed as dead, none twice, total reached",
            observed,
            ok,
        )


def pytest_scenarios() -> list[tuple[str, str, str, bool]]:
    """One row per test of tests/test_faults.py; a parametrised test is one row with its case count."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "tests/test_faults.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    outcomes: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        for word in ("PASSED", "FAILED", "ERROR"):
            if line.startswith(word + " "):
                name = (
                    line[len(word) + 1 :]
                    .split(" - ")[0]
                    .replace("tests/test_faults.py::test_", "")
                )
                outcomes.setdefault(name.split("[")[0], []).append(word)
    rows = []
    for name, words in outcomes.items():
        bad = [w for w in words if w != "PASSED"]
        observed = (
            f"{len(words) - len(bad)} of {len(words)} cases passed"
            if len(words) > 1
            else words[0].lower()
        )
        rows.append((name.replace("_", " "), "as the test asserts", observed, not bad))
    if not rows:
        rows.append(
            (
                "tests/test_faults.py",
                "runs",
                f"pytest exit {done.returncode}: {done.stdout[-300:]}",
                False,
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [
        kill_scenario(args.kills, args.trials),
        journal_scenario(args.trials),
        write_fault_scenario(args.trials, "kill"),
        write_fault_scenario(args.trials, "enospc"),
        pid_namespace_scenario(args.trials),
        *pytest_scenarios(),
    ]
    print("| scenario | expected | observed | ok |\n| --- | --- | --- | --- |")
    for scenario, expected, observed, ok in rows:
        print(f"| {scenario} | {expected} | {observed} | {'yes' if ok else 'NO'} |")
    failed = sum(not r[3] for r in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
