"""Fault-injection suite: the slow scenarios, run for real, then a table of expected vs observed.

    python -m tests.fault_suite [--kills 3] [--trials 6]

Scenario 1 kills a study process with SIGKILL in the middle of a trial several times in a row,
resuming after each kill, and checks that every finished trial is kept, none is counted twice
and the total is reached. The fast scenarios (failing trials, full disk, bad files, bad flags,
concurrent workers, determinism) are the tests of tests/test_faults.py; their outcomes are
listed too.
"""

from __future__ import annotations

import argparse
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import optuna

from nas.storage import state_counts
from nas.study import open_existing

REPO = pathlib.Path(__file__).resolve().parents[1]


def _study_args(folder: pathlib.Path, trials: int) -> list[str]:
    return [sys.executable, str(REPO / "search.py"), "study", "k", "--results-dir", str(folder), "--n-trials",
            str(trials), "--epochs", "8", "--device", "cpu", "--quiet", "--dataset", "synthetic", "--image-size", "12",
            "--no-early-stopping"]


def _kill_mid_trial(folder: pathlib.Path, trials: int, timeout: float = 300) -> dict[int, tuple]:
    """Start the study, SIGKILL it once a trial has trained an epoch; return the finished trials."""
    proc = subprocess.Popen(_study_args(folder, trials), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, finished = time.time() + timeout, {}
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if not (folder / "k" / "journal.log").exists():
            continue
        _, study = open_existing(folder / "k")
        finished = {t.number: (t.state, t.values) for t in study.trials if t.state.is_finished()}
        if any(t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("curve") for t in study.trials):
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
        done = subprocess.run(_study_args(folder, trials), cwd=REPO, capture_output=True, text=True, timeout=600)
        _, study = open_existing(folder / "k")
        counts = state_counts(study)
        lost = [n for n, v in kept.items() if (study.trials[n].state, study.trials[n].values) != v]
        died = sum(1 for t in study.trials if t.user_attrs.get("reason", "").endswith("died"))
        ok = done.returncode == 0 and not lost and counts["COMPLETE"] + counts["PRUNED"] == trials and not counts["RUNNING"]
        observed = (f"exit {done.returncode}; {len(kept)} finished before the kills, {len(lost)} changed; "
                    f"{counts['COMPLETE'] + counts['PRUNED']}/{trials} done; {died} killed trials marked failed "
                    f"(worker died); {counts['RUNNING']} left running")
        return (f"study SIGKILLed mid-trial {kills}x in a row, then resumed",
                "finished trials kept, none twice, total reached", observed, ok)


def pytest_scenarios() -> list[tuple[str, str, str, bool]]:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           "tests/test_faults.py"], cwd=REPO, capture_output=True, text=True, timeout=1200)
    rows = []
    for line in done.stdout.splitlines():
        for word in ("PASSED", "FAILED", "ERROR"):
            if line.startswith(word + " "):
                name = line[len(word) + 1:].split(" - ")[0].replace("tests/test_faults.py::test_", "")
                rows.append((name.replace("_", " "), "as the test asserts", word.lower(), word == "PASSED"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [kill_scenario(args.kills, args.trials), *pytest_scenarios()]
    print(f"| scenario | expected | observed | ok |\n| --- | --- | --- | --- |")
    for scenario, expected, observed, ok in rows:
        print(f"| {scenario} | {expected} | {observed} | {'yes' if ok else 'NO'} |")
    failed = sum(not r[3] for r in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
