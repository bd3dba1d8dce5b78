"""The trainer on a CUDA device: what no CPU test can show. Every test is marked ``gpu`` and
skips without CUDA (tests/conftest.py). Tiny sizes: the whole file takes seconds on a GPU."""

import dataclasses
import warnings

import pytest
import torch

import softshare.train
from softshare import ModelConfig
from softshare.checkpoint import load_checkpoint
from softshare.data import DataConfig, load_dataset
from softshare.evaluate import auto_batch_size, evaluate
from softshare.runtime import cuda_has_fast_bf16
from softshare.train import CHECKPOINT, TrainConfig, train

pytestmark = pytest.mark.gpu
PLAN = "SWRN-16-1-2"


@pytest.fixture(scope="module")
def data():
    cfg = DataConfig(dataset="synthetic", synthetic_train=800, synthetic_test=200, image_size=16)
    return cfg, load_dataset(cfg)


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=32, schedule="cosine", lr=0.05, device="cuda", cutout=4)
    return TrainConfig(**(base | kw))


def test_a_bf16_channels_last_step_runs_on_the_device(data):
    if not cuda_has_fast_bf16(torch.device("cuda")):
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16 tensor cores")
    dcfg, ds = data
    run = softshare.train._Run(
        ModelConfig(PLAN), _cfg(precision="bf16", channels_last=True), ds, dcfg
    )
    assert run.data.train.images.is_cuda and run.data.train.images.dtype == torch.uint8
    conv = run.model.stem.weight
    assert conv.is_cuda and conv.is_contiguous(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    loss, acc, seen, finite = softshare.train._train_epoch(run, None)
    assert finite and seen == len(ds.train) // 32 * 32 and 0.0 <= acc <= 1.0
    after = run.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert torch.backends.cudnn.benchmark  # switched on by the CUDA run


def test_the_step_loop_does_not_synchronise(data):
    """torch's sync debug mode warns at each synchronising call: none in the steps, one (the
    epoch's totals) per epoch, however many steps it has."""
    _, ds = data
    run = softshare.train._Run(ModelConfig(PLAN), _cfg(), ds, None)
    softshare.train._train_epoch(run, None)  # warm-up: allocator, cuDNN autotuning
    counts = []
    for n in (160, 704):  # 5 and 22 steps (a progress point at 20)
        run.data = dataclasses.replace(ds, train=ds.train.subset(torch.arange(n))).to("cuda")

        class Progress:
            def epoch_start(self, *a): ...
            def batch(self, *a, **k): ...
            def epoch_end(self, *a): ...

        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                softshare.train._train_epoch(run, Progress())
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    assert counts[0] == counts[1] <= 2, counts


def test_resume_on_cuda_gives_the_straight_run(data, tmp_path):
    """4 epochs straight against 2, a crash, and a resume: the same metrics and weights, bit
    for bit, with reproducible kernels asked for (which also keeps cudnn.benchmark off)."""
    dcfg, ds = data

    class Crash(Exception):
        pass

    def crash_after_two(metrics):
        if metrics.epoch == 2:
            raise Crash

    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        cfg = _cfg(epochs=4)
        whole = train(ModelConfig(PLAN), cfg, ds, data_config=dcfg, out_dir=tmp_path / "a")
        with pytest.raises(Crash):
            train(
                ModelConfig(PLAN),
                cfg,
                ds,
                data_config=dcfg,
                out_dir=tmp_path / "b",
                callback=crash_after_two,
            )
        assert "cuda" in load_checkpoint(tmp_path / "b" / CHECKPOINT)["rng"]
        resumed = train(
            ModelConfig(PLAN), cfg, ds, data_config=dcfg, out_dir=tmp_path / "b", resume=True
        )
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[r[k] for k in keys] for r in resumed.history] == [
        [r[k] for k in keys] for r in whole.history
    ]
    a = load_checkpoint(tmp_path / "a" / CHECKPOINT)["model_state"]
    b = load_checkpoint(tmp_path / "b" / CHECKPOINT)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cudnn_benchmark_is_on_while_a_cuda_run_trains(data):
    _, ds = data
    seen = []
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False):
        train(
            ModelConfig(PLAN),
            _cfg(epochs=1),
            ds,
            callback=lambda m: seen.append(torch.backends.cudnn.benchmark),
        )
    assert seen == [True]


def test_auto_eval_batch_takes_the_whole_split_and_matches_small_batches(data):
    _, ds = data
    model = softshare.build_model(PLAN).cuda().eval()
    val = ds.val.to("cuda")
    assert auto_batch_size(model, val, "fp32") == len(val)  # 64 tiny images fit anywhere
    auto = evaluate(model, val, ds.mean, ds.std, batch_size=0, precision="fp32")
    small = evaluate(model, val, ds.mean, ds.std, batch_size=7, precision="fp32")
    assert auto[1] == small[1] and abs(auto[0] - small[0]) < 1e-4


def test_a_failed_cuda_run_leaves_no_memory_behind(data):
    """An out-of-memory trial is recorded and the study goes on: the error propagates as
    itself, and what the run held is back with the driver though the caller keeps the error."""
    _, ds = data
    train(ModelConfig(PLAN), _cfg(epochs=1), ds)  # warm-up: cuBLAS workspaces stay allocated
    torch.cuda.empty_cache()
    before, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()

    class OutOfMemory:
        def epoch_start(self, *a): ...
        def epoch_end(self, *a): ...

        def batch(self, *a, **k):
            raise torch.OutOfMemoryError("CUDA out of memory (raised by the test)")

    with pytest.raises(torch.OutOfMemoryError) as raised:
        train(ModelConfig(PLAN), _cfg(epochs=1), ds, progress=OutOfMemory())
    assert raised.value is not None
    assert torch.cuda.memory_allocated() == before
    assert torch.cuda.memory_reserved() <= reserved + 2**21  # the cache emptied: one segment
