"""bench/bench_inherit.py: its rank statistics against known values, and --quick end to end."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _bench():
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location(
        "bench_inherit", REPO / "bench" / "bench_inherit.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rank_statistics_match_hand_computed_values():
    b = _bench()
    same, reversed_ = [1, 2, 3, 4], [4, 3, 2, 1]
    assert b.kendall_tau(same, [10, 20, 30, 40]) == pytest.approx(1.0)
    assert b.kendall_tau(same, reversed_) == pytest.approx(-1.0)
    # one swapped pair of 6: (C - D) / n_pairs = (5 - 1) / 6
    assert b.kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    # tau-b with a tie in one list: C=5, D=0, ties_b=1 -> 5 / sqrt(6 * 5)
    assert b.kendall_tau([1, 2, 3, 4], [1, 2, 3, 3]) == pytest.approx(5 / 30**0.5)
    assert b.spearman_rho(same, [1, 2, 4, 3]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert b.spearman_rho(same, reversed_) == pytest.approx(-1.0)


@pytest.mark.slow
def test_bench_inherit_quick_prints_the_table():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_inherit.py"), "--quick", "--threads", "1"],
        cwd=REPO / "bench",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for fragment in ("parent:        WRN-16-1", "Kendall tau", "Spearman rho", "4 ep, lr 0.01"):
        assert fragment in done.stdout, fragment
