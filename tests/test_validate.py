"""softshare.validate: one meaning of "an integer" and "a number" for softshare and nas alike.

A search space hands numpy integers (Optuna, pandas, a grid) to the library: every config and
layer takes them, stores Python ints (JSON-native), and refuses bools, floats and NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from softshare import ModelConfig, SConv2d, parse_plan
from softshare.data import Augment, DataConfig
from softshare.layers import TemplateBank
from softshare.plan import SharingPlan
from softshare.train import TrainConfig
from softshare.validate import is_int, is_number, require_in, require_int


def test_the_rules():
    assert is_int(3) and is_int(np.int64(3)) and not is_int(True) and not is_int(3.0)
    assert is_number(np.float32(0.5)) and not is_number(float("nan")) and not is_number(False)
    assert require_int("n", np.int32(4), 1) == 4 and type(require_int("n", np.int32(4), 1)) is int
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, but got n=0"):
        require_int("n", 0, 1)
    assert require_in("x", np.float64(0.25), 0.0, 1.0) == 0.25
    with pytest.raises(ValueError, match=r"x must be a number in \[0.0, 1.0\]"):
        require_in("x", float("inf"), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"k must be an integer in \[8, 1024\]"):
        require_in("k", 7, 8, 1024, integer=True)


def test_softshare_takes_numpy_integers_and_stores_python_ints():
    i = np.int64
    bank = TemplateBank(i(2), i(3), i(4), i(3))
    assert bank.templates.shape == (2, 4, 3, 3, 3) and type(bank.num_templates) is int
    assert SConv2d(bank, i(1))(torch.zeros(1, 3, 5, 5)).shape == (1, 4, 5, 5)
    plan = SharingPlan(i(16), i(1), (((i(2), i(2)),), ((i(2), i(2)),), ((i(2), None),)))
    assert plan == parse_plan("16-1:2x2/2x2/2")
    json.dumps({"depth": plan.depth, "width": plan.width, "stages": plan.stages})
    model = ModelConfig("SWRN-16-1-2", num_classes=i(10), in_channels=i(3))
    assert type(model.num_classes) is int
    recipe = TrainConfig(
        epochs=i(3), batch_size=i(64), seed=i(1), warmup=np.float32(0.5), lr_update="step"
    )
    json.dumps(recipe.to_dict())
    assert type(recipe.epochs) is int and type(recipe.warmup) is float
    data = DataConfig(image_size=i(16), val_fraction=np.float64(0.1))
    json.dumps(data.to_dict())
    assert type(data.image_size) is int
    assert type(Augment(cutout=i(8)).cutout) is int


@pytest.mark.parametrize(
    "build",
    [
        lambda: TemplateBank(True, 3, 4, 3),
        lambda: TrainConfig(epochs=2.0),
        lambda: TrainConfig(seed=True),
        lambda: TrainConfig(lr=float("nan")),
        lambda: DataConfig(image_size=16.0),
        lambda: SharingPlan(16, 1.0, (((2, 2),), ((2, 2),), ((2, None),))),
        lambda: Augment(cutout=True),
    ],
)
def test_bools_floats_and_nan_are_refused_in_one_line(build):
    with pytest.raises(ValueError) as refused:
        build()
    assert "\n" not in str(refused.value)
