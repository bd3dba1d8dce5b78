"""nas.ray_options: RayOptions, validated without importing Ray."""

from __future__ import annotations

import pytest

from nas.ray_options import RayOptions


@pytest.mark.parametrize(
    "kw,fragment",
    [
        ({"cpus_per_trial": 0}, "cpus_per_trial must be a number > 0"),
        ({"gpus_per_trial": -0.5}, "gpus_per_trial must be a fraction"),
        ({"gpus_per_trial": 1.5}, "gpus_per_trial must be a fraction"),
        ({"max_concurrent": 0}, "max_concurrent must be an integer >= 1"),
        ({"max_failures": -1}, "max_failures must be an integer >= 0"),
        ({"verbose": 3}, "verbose must be 0, 1 or 2"),
    ],
)
def test_bad_ray_options_name_the_argument(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        RayOptions(**kw)


def test_valid_ray_option_edges():
    for kw in (
        {"cpus_per_trial": 0.25},
        {"gpus_per_trial": 0.5},
        {"gpus_per_trial": 1},
        {"gpus_per_trial": 2},
        {"max_concurrent": 1},
        {"max_failures": 0},
        {"verbose": 0},
    ):
        RayOptions(**kw)
