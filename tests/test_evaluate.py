"""softshare.evaluate: evaluation batch sizes."""

import pytest
import torch

import softshare
import softshare.checkpoint
import softshare.data
import softshare.train
from softshare.evaluate import auto_batch_size
from softshare.train import TrainConfig


def test_eval_batch_size_auto_is_the_default_and_saved_sizes_still_load():
    assert TrainConfig().eval_batch_size == 0
    assert TrainConfig.from_dict({"eval_batch_size": 500}).eval_batch_size == 500
    with pytest.raises(ValueError, match="eval_batch_size"):
        TrainConfig(eval_batch_size=-1)
    model = softshare.build_model("WRN-10-1")
    images = torch.zeros(1200, 3, 8, 8, dtype=torch.uint8)
    split = softshare.data.Split(images, torch.zeros(1200, dtype=torch.int64))
    assert auto_batch_size(model, split) == 500  # the CPU: 500 as before
    assert auto_batch_size(model, split.subset(torch.arange(30))) == 30
