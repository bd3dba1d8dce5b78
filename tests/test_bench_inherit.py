"""bench/bench_inherit.py: its rank statistics against known values, and --quick end to end."""

import json

import pytest

from tests.benches import load_bench, run_bench


def _bench():
    return load_bench("bench_inherit")


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
    done = run_bench("bench_inherit", "--quick", "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    for fragment in ("parent:        WRN-16-1", "Kendall tau", "Spearman rho", "4 ep, lr 0.01"):
        assert fragment in done.stdout, fragment


def test_plans_split_evenly_over_shapes_and_within_shape_ranks_each_net_apart():
    b = _bench()
    from nas.space import SearchSpace

    space = SearchSpace(depths=(16, 22), widths=(1,), max_templates=2)
    plans = b._plans(space, 5, 0, (10, 3))
    assert [p.depth for p in plans] == [16, 16, 16, 22, 22]
    assert len({p.text for p in plans}) == 5
    # a one-shape space draws the plans it drew before shapes were split
    one = SearchSpace(depths=(16,), widths=(1,), max_templates=2)
    assert [p.text for p in b._plans(one, 4, 0, (10, 3))] == [
        p.text for p in b._plans_of_shape(one, 4, 0, (10, 3))
    ]
    # depth 16 ordered the same by both lists (tau 1, 3 pairs), depth 22 reversed (tau -1,
    # 1 pair): weighted by pairs (3 * 1 + 1 * -1) / 4; the depths' ordering is not counted.
    a = [0.1, 0.2, 0.3, 0.8, 0.9]
    c = [0.5, 0.6, 0.7, 0.2, 0.1]
    assert b.within_shape(b.kendall_tau, plans, a, c) == pytest.approx(0.5)
    assert b.kendall_tau(a, c) < 0.5


@pytest.mark.slow
def test_bench_inherit_quick_with_two_shapes_and_two_seeds(tmp_path):
    out = tmp_path / "inherit.json"
    done = run_bench(
        "bench_inherit", "--quick", "--threads", "1", "--widths", "1", "2", "--scratch-seeds", "2",
        "--fine-tune-epochs", "1", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for fragment in (
        "parent:        WRN-16-1",
        "parent:        WRN-16-2",
        "within a shape tau",
        "against scratch seed(s) [1] (not the proxies' own seed)",
        "scratch, first 1 epoch(s)",
    ):
        assert fragment in done.stdout, fragment
    record = json.loads(out.read_text())
    assert set(record["parents"]) == {"WRN-16-1", "WRN-16-2"}
    assert {"tau", "rho", "tau_within"} <= set(record["noise_ceiling"])
    # 2 parents of 2 epochs over 5 plans, plus 1 epoch of fine-tuning: (1 + 4/5) / 2
    assert record["summary"][0]["compute_share"] == pytest.approx(0.9)
    cut = record["proxies"][0]
    assert cut["proxy"] == "scratch, first 1 epoch(s)" and cut["compute_share"] == 0.5
    assert all(len(p["scratch_curves"]["0"]) == 2 for p in record["plans"])


def test_bench_inherit_refuses_a_bad_space_in_one_line():
    done = run_bench("bench_inherit", "--depths", "10", timeout=120)
    assert done.returncode == 2
    assert "depths must be" in done.stderr.strip().splitlines()[-1]
