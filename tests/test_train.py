import json

import pytest
import torch

import softshare
from softshare import ModelConfig
from softshare.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from softshare.data import DataConfig, load_dataset
from softshare.evaluate import evaluate_checkpoint, load
from softshare.train import BEST, CHECKPOINT, TrainConfig, train
from tests.conftest_data import write_cifar10

PLAN = "SWRN-16-1-2"


@pytest.fixture(scope="module")
def synthetic():
    cfg = DataConfig(dataset="synthetic", synthetic_train=400, synthetic_test=100, image_size=16)
    return cfg, load_dataset(cfg)


def _cfg(**kw):
    return TrainConfig(
        **(
            {
                "epochs": 3,
                "batch_size": 32,
                "schedule": "cosine",
                "device": "cpu",
                "precision": "fp32",
                "lr": 0.05,
            }
            | kw
        )
    )


@pytest.mark.slow
def test_short_training_loss_falls(synthetic):
    dcfg, data = synthetic
    result = train(ModelConfig(PLAN), _cfg(epochs=4), data, data_config=dcfg)
    losses = [row["train_loss"] for row in result.history]
    assert result.status == "complete" and result.epochs_run == 4
    assert losses[-1] < 0.85 * losses[0]
    assert result.parameters == softshare.parse_plan(PLAN).num_parameters(10)
    assert 0.0 <= result.best_val_acc <= 1.0


@pytest.mark.slow
def test_resume_continues_exactly(synthetic, tmp_path):
    dcfg, data = synthetic
    whole = train(ModelConfig(PLAN), _cfg(), data, data_config=dcfg, out_dir=tmp_path / "a")

    class Interrupt(Exception):
        pass

    def crash_after_two(metrics):
        if metrics.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(
            ModelConfig(PLAN),
            _cfg(),
            data,
            data_config=dcfg,
            out_dir=tmp_path / "b",
            callback=crash_after_two,
        )
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT)["epoch"] == 2
    resumed = train(
        ModelConfig(PLAN), _cfg(), data, data_config=dcfg, out_dir=tmp_path / "b", resume=True
    )
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[row[k] for k in keys] for row in resumed.history] == [
        [row[k] for k in keys] for row in whole.history
    ]
    a = load_checkpoint(tmp_path / "a" / CHECKPOINT)["model_state"]
    b = load_checkpoint(tmp_path / "b" / CHECKPOINT)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_refuses_another_model_or_recipe(synthetic, tmp_path):
    dcfg, data = synthetic
    train(ModelConfig(PLAN), _cfg(epochs=1), data, data_config=dcfg, out_dir=tmp_path)
    with pytest.raises(ValueError, match="holds model"):
        train(
            ModelConfig("WRN-16-1"),
            _cfg(epochs=1),
            data,
            data_config=dcfg,
            out_dir=tmp_path,
            resume=True,
        )
    with pytest.raises(ValueError, match="different recipe \\(lr\\)"):
        train(
            ModelConfig(PLAN),
            _cfg(epochs=1, lr=0.2),
            data,
            data_config=dcfg,
            out_dir=tmp_path,
            resume=True,
        )
    # how fast it runs is not what it learns: a resume may change the runtime fields
    runtime = {"channels_last": False, "compile": False, "eval_batch_size": 7, "precision": "fp32"}
    again = train(
        ModelConfig(PLAN),
        _cfg(epochs=2, **runtime),
        data,
        data_config=dcfg,
        out_dir=tmp_path,
        resume=False,
    )
    assert again.epochs_run == 2
    resumed = train(
        ModelConfig(PLAN), _cfg(epochs=2), data, data_config=dcfg, out_dir=tmp_path, resume=True
    )
    assert resumed.epochs_run == 2


@pytest.mark.slow
def test_callback_stops_with_reason(synthetic, tmp_path):
    dcfg, data = synthetic
    result = train(
        ModelConfig(PLAN),
        _cfg(epochs=5),
        data,
        data_config=dcfg,
        out_dir=tmp_path,
        callback=lambda m: "rung 1: rank 3 of 3" if m.epoch == 1 else None,
    )
    assert (result.status, result.epochs_run, result.stop_reason) == (
        "stopped",
        1,
        "rung 1: rank 3 of 3",
    )
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "stopped" and len(saved["history"]) == 1


@pytest.mark.slow
def test_non_finite_loss_stops_as_diverged(synthetic):
    dcfg, data = synthetic
    result = train(ModelConfig(PLAN), _cfg(epochs=5, lr=1e12), data, data_config=dcfg)
    assert result.status == "diverged" and result.epochs_run < 5
    assert "non-finite" in result.stop_reason


@pytest.mark.slow
def test_checkpoint_rebuilds_model_and_evaluates(synthetic, tmp_path):
    dcfg, data = synthetic
    train(ModelConfig(PLAN), _cfg(epochs=2), data, data_config=dcfg, out_dir=tmp_path)
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
    train(ModelConfig(PLAN), _cfg(epochs=1), data, data_config=dcfg, out_dir=tmp_path)
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


def test_train_config_validation_edges():
    TrainConfig(epochs=1, momentum=0.0, weight_decay=0.0, cutout=0)
    for bad, match in [
        (dict(epochs=0), "epochs"),
        (dict(momentum=1.0), "momentum"),
        (dict(lr=0), "lr"),
        (dict(schedule="linear"), "schedule"),
        (dict(milestones=(120, 60)), "milestones"),
        (dict(precision="fp16"), "precision"),
        (dict(batch_size=0), "batch_size"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)
    cfg = _cfg()
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown train config keys"):
        TrainConfig.from_dict({"epochs": 3, "warmup": 1})


@pytest.mark.slow
def test_cli_train_then_evaluate_on_cifar10_pickles(tmp_path, search_cli):
    root = tmp_path / "data"
    write_cifar10(root, n_train_per_class=10, n_test_per_class=3)
    out = tmp_path / "run"
    done = search_cli(
        "train",
        "--data",
        str(root),
        "--arch",
        "wrn",
        "--depth",
        "10",
        "--width",
        "1",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--cutout",
        "--out",
        str(out),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert "complete: 2 epochs" in done.stdout
    ev = search_cli("evaluate", str(out / BEST), "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["images"] == 30


@pytest.mark.slow
def test_cli_missing_dataset_is_one_line(tmp_path, search_cli):
    done = search_cli("train", "--data", str(tmp_path / "nowhere"), "--epochs", "1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert (
        str(tmp_path / "nowhere") in lines[0] and "--download" in lines[0] and "--data" in lines[0]
    )


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--epochs", "zero"], "--epochs: expected an integer >= 1"),
        pytest.param(
            ["--depth", "17", "--dataset", "synthetic"],
            "depth must be 6N+4",
            marks=pytest.mark.slow,
        ),
        (["--precision", "fp16"], "invalid choice"),
        pytest.param(
            ["--dataset", "imagenet"], "unknown dataset 'imagenet'", marks=pytest.mark.slow
        ),
        (["--val-fraction", "2"], "--val-fraction: expected a number >= 0.0 and <= 0.9"),
    ],
)
def test_cli_bad_flags_one_line(search_cli, args, fragment):
    done = search_cli("train", *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], done.stderr


def test_a_run_can_start_from_given_weights(synthetic, tmp_path):
    """train(initial=...) starts from those weights (softshare.inherit's), not at random."""
    dcfg, data = synthetic
    parent = softshare.build_model("WRN-16-1")
    child = softshare.inherit(parent, "SWRN-16-1-1")
    tiny = _cfg(epochs=1, lr=1e-12, weight_decay=0.0, momentum=0.0)  # the weights barely move
    train(
        ModelConfig("SWRN-16-1-1"), tiny, data, data_config=dcfg, out_dir=tmp_path, initial=child
    )
    started = load(tmp_path / CHECKPOINT)
    for name, value in child.state_dict().items():
        if value.dtype.is_floating_point and "running" not in name:
            assert torch.allclose(started.state_dict()[name], value, atol=1e-6), name
    other = softshare.build_model("WRN-16-1")
    with pytest.raises(ValueError, match="initial weights are of WRN-16-1, not SWRN-16-1-1"):
        train(ModelConfig("SWRN-16-1-1"), tiny, data, initial=other)
