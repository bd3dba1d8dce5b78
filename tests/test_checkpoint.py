"""softshare.checkpoint: a checkpoint rebuilds its model; damaged or foreign files are refused."""

import pytest
import torch

from softshare import ModelConfig
from softshare.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from softshare.evaluate import evaluate_checkpoint, load
from softshare.train import BEST, CHECKPOINT, train
from tests.studies import quick_recipe

PLAN = "SWRN-16-1-2"


@pytest.mark.slow
def test_checkpoint_rebuilds_model_and_evaluates(synthetic, tmp_path):
    dcfg, data = synthetic
    train(ModelConfig(PLAN), quick_recipe(epochs=2), data, data_config=dcfg, out_dir=tmp_path)
    model = load(tmp_path / BEST)
    assert not model.training and model.config == ModelConfig(PLAN)
    x = torch.randn(2, 3, 16, 16)
    again = load(tmp_path / BEST)
    assert torch.equal(model(x), again(x))
    report = evaluate_checkpoint(tmp_path / BEST, device="cpu")
    assert report["images"] == 100 and 0.0 <= report["accuracy"] <= 1.0


@pytest.mark.slow
def test_corrupt_and_foreign_checkpoints_are_refused(synthetic, tmp_path):
    dcfg, data = synthetic
    train(ModelConfig(PLAN), quick_recipe(epochs=1), data, data_config=dcfg, out_dir=tmp_path)
    good = (tmp_path / CHECKPOINT).read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="cut off or not a torch file"):
        load_checkpoint(truncated)
    code = tmp_path / "code.pt"  # a pickle of an object: never unpickled, said in our words
    torch.save({"format": "softshare", "thing": __import__("argparse").Namespace(a=1)}, code)
    with pytest.raises(CheckpointError, match="Python objects other than tensors") as refused:
        load_checkpoint(code)
    assert "issue" not in str(refused.value) and "\n" not in str(refused.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a softshare checkpoint"):
        load_checkpoint(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00hello" * 100)
    with pytest.raises(CheckpointError):
        load_checkpoint(garbage)
    other_arch = tmp_path / "other.pt"
    ckpt = load_checkpoint(tmp_path / CHECKPOINT)
    ckpt["model_config"]["plan"] = "WRN-16-2"
    save_checkpoint(other_arch, {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    with pytest.raises(CheckpointError, match="do not fit"):
        load(other_arch)
