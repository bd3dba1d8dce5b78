"""nas.noise: the binomial error of an accuracy, the pooled seed SD, and Holm's correction."""

from __future__ import annotations

import math

import pytest

from nas.noise import beyond_noise, binomial_se, difference_se, holm, one_sided_p, seed_sd


def test_holm_keeps_the_family_wise_error():
    assert holm([0.01, 0.04, 0.03], alpha=0.05) == [True, False, False]  # 0.01 <= 0.05/3 only
    assert holm([0.001, 0.02, 0.04], alpha=0.05) == [True, True, True]
    assert holm([]) == []
    assert one_sided_p(0.0) == pytest.approx(0.5) and one_sided_p(1.96) == pytest.approx(
        0.025, 1e-3
    )


def test_the_seed_sd_pools_every_plans_deviations_at_each_epoch():
    # plan A: two seeds (0.5, 0.7 then 0.6, 0.6); plan B: three seeds at epoch 0 only
    groups = [[[0.5, 0.6], [0.7, 0.6]], [[0.4], [0.5], [0.6]]]
    sd = seed_sd(groups)
    # epoch 0: squares 0.02 (A) + 0.02 (B) over 1 + 2 degrees of freedom; epoch 1: 0 over 1
    assert sd[0] == pytest.approx(math.sqrt(0.04 / 3)) and sd[1] == pytest.approx(0.0)
    assert seed_sd([[[0.5, 0.6]], [[0.4]]]) == [None, None]  # no plan with two runs
    assert seed_sd([]) == []


def test_binomial_errors_and_what_counts_as_beyond_them():
    assert binomial_se(0.5, 10_000) == pytest.approx(0.005)
    assert binomial_se(0.5, None) == 0.0
    assert difference_se(0.5, 0.5, 10_000) == pytest.approx(0.005 * math.sqrt(2))
    assert beyond_noise(0.52, 0.50, 10_000) and not beyond_noise(0.505, 0.50, 10_000)
