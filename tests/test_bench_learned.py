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
