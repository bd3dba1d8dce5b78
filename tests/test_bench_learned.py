"""bench/bench_learned.py --quick runs end to end, prints every measure it promises, and a second
run with the same --out resumes its finished studies instead of refusing them (figures mean
nothing at this size)."""

import pytest

from tests.benches import run_bench

pytestmark = pytest.mark.slow


def test_bench_learned_quick_prints_every_measure_and_resumes(tmp_path):
    args = (
        "--quick",
        "--threads",
        "1",
        "--seeds",
        "0",
        "--confirm-max",
        "2",
        "--out",
        str(tmp_path),
    )
    done = run_bench("bench_learned", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    for fragment in (
        "seed 0: hypervolume at a share of TPE-alone's compute",
        "learned reaches TPE-alone's final HV",
        "learned  confirmed front: ",
        "tpe      uniform baselines beaten beyond the noise (Holm): ",
        "random   confirmed front: ",
        "tau(projection error, accuracy) within parameter terciles",
        "goal: learned front beats a uniform baseline: ",
    ):
        assert fragment in done.stdout, fragment
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "learned-learned-s0",
        "learned-random-s0",
        "learned-tpe-s0",
    ]
    again = run_bench("bench_learned", *args)
    assert again.returncode == 0, again.stderr[-2000:]
    table = [line for line in done.stdout.splitlines() if line.startswith(("25%", "100%"))]
    assert table and table == [
        line for line in again.stdout.splitlines() if line.startswith(("25%", "100%"))
    ]
    # --read trains nothing and prints the same tables, with how near each verdict came
    read = run_bench("bench_learned", *args, "--read")
    assert read.returncode == 0, read.stderr[-2000:]
    assert "trials, sampler" not in read.stdout
    assert table == [line for line in read.stdout.splitlines() if line.startswith(("25%", "100%"))]
    assert "learned  nearest to a claim: " in read.stdout
    # a seed it does not hold: one line naming what is missing, and nothing written
    missing = run_bench(
        "bench_learned", "--quick", "--seeds", "1", "--out", str(tmp_path), "--read"
    )
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1].startswith("--read: ")
    assert "learned-learned-s1" in missing.stderr
    assert not (tmp_path / "learned-learned-s1").exists()
