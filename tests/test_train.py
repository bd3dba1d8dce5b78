import gc
import json
import math
import os

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import softshare
import softshare.checkpoint
import softshare.data
import softshare.train
from softshare import ModelConfig
from softshare.checkpoint import load_checkpoint
from softshare.data import DataConfig, load_dataset
from softshare.evaluate import load
from softshare.train import BEST, CHECKPOINT, TrainConfig, train
from tests.conftest_data import write_cifar10
from tests.studies import quick_recipe

PLAN = "SWRN-16-1-2"


@pytest.mark.slow
def test_short_training_loss_falls(synthetic):
    dcfg, data = synthetic
    result = train(ModelConfig(PLAN), quick_recipe(epochs=4), data, data_config=dcfg)
    losses = [row["train_loss"] for row in result.history]
    assert result.status == "complete" and result.epochs_run == 4
    assert losses[-1] < 0.85 * losses[0]
    assert result.parameters == softshare.parse_plan(PLAN).num_parameters(10)
    assert 0.0 <= result.best_val_acc <= 1.0


@pytest.mark.slow
def test_resume_continues_exactly(synthetic, tmp_path):
    dcfg, data = synthetic
    whole = train(
        ModelConfig(PLAN), quick_recipe(), data, data_config=dcfg, out_dir=tmp_path / "a"
    )

    class Interrupt(Exception):
        pass

    def crash_after_two(metrics):
        if metrics.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(
            ModelConfig(PLAN),
            quick_recipe(),
            data,
            data_config=dcfg,
            out_dir=tmp_path / "b",
            callback=crash_after_two,
        )
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT)["epoch"] == 2
    resumed = train(
        ModelConfig(PLAN),
        quick_recipe(),
        data,
        data_config=dcfg,
        out_dir=tmp_path / "b",
        resume=True,
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
    train(ModelConfig(PLAN), quick_recipe(epochs=1), data, data_config=dcfg, out_dir=tmp_path)
    with pytest.raises(ValueError, match="holds model"):
        train(
            ModelConfig("WRN-16-1"),
            quick_recipe(epochs=1),
            data,
            data_config=dcfg,
            out_dir=tmp_path,
            resume=True,
        )
    with pytest.raises(ValueError, match="different recipe \\(lr\\)"):
        train(
            ModelConfig(PLAN),
            quick_recipe(epochs=1, lr=0.2),
            data,
            data_config=dcfg,
            out_dir=tmp_path,
            resume=True,
        )
    # how fast it runs is not what it learns: a resume may change the runtime fields
    runtime = {"channels_last": False, "compile": False, "eval_batch_size": 7, "precision": "fp32"}
    again = train(
        ModelConfig(PLAN),
        quick_recipe(epochs=2, **runtime),
        data,
        data_config=dcfg,
        out_dir=tmp_path,
        resume=False,
    )
    assert again.epochs_run == 2
    resumed = train(
        ModelConfig(PLAN),
        quick_recipe(epochs=2),
        data,
        data_config=dcfg,
        out_dir=tmp_path,
        resume=True,
    )
    assert resumed.epochs_run == 2


@pytest.mark.slow
def test_callback_stops_with_reason(synthetic, tmp_path):
    dcfg, data = synthetic
    result = train(
        ModelConfig(PLAN),
        quick_recipe(epochs=5),
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
    result = train(ModelConfig(PLAN), quick_recipe(epochs=5, lr=1e12), data, data_config=dcfg)
    assert result.status == "diverged" and result.epochs_run < 5
    assert "non-finite" in result.stop_reason


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
    cfg = quick_recipe()
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown train config keys"):
        TrainConfig.from_dict({"epochs": 3, "warm_up": 1})


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
    tiny = quick_recipe(
        epochs=1, lr=1e-12, weight_decay=0.0, momentum=0.0
    )  # the weights barely move
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


# ----------------------------------------------------------------------------- ready for the GPU


@pytest.fixture(scope="module")
def tiny():
    """64 training and 16 validation images of 8x8: a WRN-10-1 epoch takes well under a second."""
    cfg = DataConfig(
        dataset="synthetic", synthetic_train=80, synthetic_test=16, image_size=8, val_fraction=0.2
    )
    return cfg, load_dataset(cfg)


def _tinyquick_recipe(**kw):
    return quick_recipe(**({"epochs": 1, "batch_size": 8} | kw))


def test_resume_reads_the_checkpoint_onto_the_cpu_whatever_the_device(tiny, tmp_path, monkeypatch):
    """A CUDA run used to read its checkpoint onto the GPU, and Generator.set_state refused the
    RNG state there. The meta device stands in for the GPU: a run resolved onto it restores a
    CPU-written checkpoint, RNG states included."""
    dcfg, data = tiny

    class Stop(Exception):
        pass

    def stop_after_one(metrics):
        raise Stop

    with pytest.raises(Stop):
        train(
            ModelConfig("WRN-10-1"),
            _tinyquick_recipe(epochs=2),
            data,
            data_config=dcfg,
            out_dir=tmp_path,
            callback=stop_after_one,
        )
    saved = load_checkpoint(tmp_path / CHECKPOINT)
    monkeypatch.setattr(softshare.train, "resolve_device", lambda device: torch.device("meta"))
    restored = {}
    real_restore = softshare.train._Run.restore

    def restore_then_stop(run, ckpt):
        real_restore(run, ckpt)
        restored.update(epoch=run.epoch, generator=run.generator.get_state(), device=run.device)
        raise Stop  # a run on the meta device cannot train on: stop once it has resumed

    monkeypatch.setattr(softshare.train._Run, "restore", restore_then_stop)
    with pytest.warns(UserWarning, match="meta parameter"), pytest.raises(Stop):
        train(
            ModelConfig("WRN-10-1"),
            _tinyquick_recipe(epochs=2),
            data,
            data_config=dcfg,
            out_dir=tmp_path,
            resume=True,
        )
    assert restored["device"].type == "meta" and restored["epoch"] == 1
    assert torch.equal(restored["generator"], saved["rng"]["generator"])


class _Recorder:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def epoch_start(self, epoch: int, epochs: int) -> None:
        pass

    def batch(self, step, total, loss, acc, batch_size=None) -> None:
        assert math.isfinite(loss) and 0.0 <= acc <= 1.0
        self.steps.append(step)

    def epoch_end(self, metrics) -> None:
        pass


class _ScalarReads(TorchDispatchMode):
    """Counts tensor-to-Python-number reads (``.item()``): each is a host sync on CUDA."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.reads += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


def test_the_step_loop_reads_no_scalar(tmp_path):
    """45 steps with a progress bar: progress at steps 20, 40 and the end, and no ``.item()``
    (on CUDA the progress figures are snapshots already copied to the host)."""
    data = load_dataset(
        DataConfig(dataset="synthetic", synthetic_train=360, image_size=8, val_fraction=0.0)
    )
    run = softshare.train._Run(ModelConfig("WRN-10-1"), _tinyquick_recipe(), data, None)
    recorder = _Recorder()
    with _ScalarReads() as mode:
        loss, acc, seen, finite = softshare.train._train_epoch(run, recorder)
    assert (seen, finite) == (360, True) and math.isfinite(loss) and 0.0 <= acc <= 1.0
    assert recorder.steps == [20, 40, 45]
    assert mode.reads == 0


def test_an_improving_epoch_serialises_its_state_once(tiny, tmp_path, monkeypatch):
    """checkpoint.pt and model_best.pt of an improving epoch are one torch.save: the best is a
    second name of the file (a hard link), or a byte copy where links fail; the next epoch's
    checkpoint replaces checkpoint.pt and leaves the best as it was."""
    dcfg, data = tiny
    saves = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: saves.append(1) or real_save(*a, **k))
    for where, link in (("linked", True), ("copied", False)):
        if not link:
            monkeypatch.setattr(softshare.checkpoint.os, "link", _no_link)
        saves.clear()
        out, linked = tmp_path / where, []

        def look(metrics, out=out, linked=linked):  # called after the epoch's files are written
            if metrics.epoch == 1:  # the first epoch always improves: both names written
                linked.append(os.path.samefile(out / CHECKPOINT, out / BEST))
                first = load_checkpoint(out / BEST)
                assert first["epoch"] == 1 and len(saves) == 1
                assert (out / CHECKPOINT).read_bytes() == (out / BEST).read_bytes()

        result = train(
            ModelConfig("WRN-10-1"),
            _tinyquick_recipe(epochs=3),
            data,
            data_config=dcfg,
            out_dir=out,
            callback=look,
        )
        assert linked == [link] and len(saves) == 3, (
            where
        )  # one per epoch, the first of which always improves
        val = [row["val_acc"] for row in result.history]
        best_epoch = val.index(max(val)) + 1
        a, b = load_checkpoint(out / CHECKPOINT), load_checkpoint(out / BEST)
        assert (a["epoch"], b["epoch"]) == (3, best_epoch)
        assert os.path.samefile(out / CHECKPOINT, out / BEST) == (link and best_epoch == 3)
        if best_epoch == 3:
            assert (out / CHECKPOINT).read_bytes() == (out / BEST).read_bytes()
            assert all(torch.equal(a["model_state"][k], v) for k, v in b["model_state"].items())
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [CHECKPOINT, BEST, "metrics.json", "config.json"]
        )  # no temporary file left behind


def _no_link(source, target):
    raise OSError(95, "Operation not supported")


def test_a_run_that_runs_out_of_memory_frees_it_and_raises_as_itself(tiny):
    """A study records an out-of-memory trial as failed and goes on: the error must come out as
    torch.OutOfMemoryError, and the run's model must be freed though the caller holds it."""
    dcfg, data = tiny

    class OutOfMemory(_Recorder):
        def batch(self, *args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def models() -> int:
        gc.collect()
        # type(), not isinstance(): isinstance reads __class__, and some of torch's objects warn then
        return sum(issubclass(type(o), softshare.SWRN) for o in gc.get_objects())

    before = models()
    with pytest.raises(torch.OutOfMemoryError, match="Tried to allocate") as raised:
        train(ModelConfig("WRN-10-1"), _tinyquick_recipe(), data, progress=OutOfMemory())
    assert raised.value.__traceback__ is not None and models() == before


@pytest.mark.slow
def test_compile_trains_each_architecture_compiled_past_torchs_recompile_limit(monkeypatch):
    """Each new architecture recompiles; past torch's recompile limit (8 per process; 1 here)
    a study's later runs used to train eager, silently. Each run now compiles afresh, and every
    epoch says whether compiled code trained it (shown in the study's progress line).
    torch.compile runs dynamo with its eager backend here: the same guards, limit and counts,
    without inductor's C++ build."""
    import io

    from nas.config import StudyConfig
    from nas.report.progress import StudyReporter

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real_compile(model, backend="eager"))
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    data = load_dataset(
        DataConfig(dataset="synthetic", synthetic_train=64, synthetic_test=16, image_size=8)
    )
    try:
        for plan in ("SWRN-16-1-1", "SWRN-16-1-2"):
            cfg = quick_recipe(epochs=1, compile=True)
            result = train(ModelConfig(plan), cfg, data)
            assert [row["compiled"] for row in result.history] == [True], plan
        assert [
            r["compiled"] for r in train(ModelConfig(PLAN), quick_recipe(epochs=1), data).history
        ] == [None]  # compile off
    finally:
        torch._dynamo.reset()
    out = io.StringIO()
    reporter = StudyReporter(StudyConfig(name="p"), stream=out)
    epoch = softshare.train.EpochMetrics(1, 1, 2.0, 0.1, 2.0, 0.1, 0.1, 1.0, 100.0, True)
    reporter.epoch(0, epoch)
    reporter.epoch(
        0, softshare.train.EpochMetrics(1, 1, 2.0, 0.1, 2.0, 0.1, 0.1, 1.0, 100.0, False)
    )
    reporter.epoch(0, softshare.train.EpochMetrics(1, 1, 2.0, 0.1, 2.0, 0.1, 0.1, 1.0, 100.0))
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("img/s  compiled") and lines[1].endswith("eager (compile fell back)")
    assert lines[2].endswith("img/s")
