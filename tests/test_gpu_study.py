"""On a CUDA card: a two-trial study, a retrain tested on the card, and an out-of-memory trial
recorded as failed with its memory given back. Skipped without CUDA (the CPU stand-ins of the
same paths are in tests/test_devices.py); bench/gpu_check.py runs these first."""

import json
import weakref

import pytest
import torch
from optuna.trial import TrialState

import nas.trial as trial_module
from nas.config import StudyConfig
from nas.optuna_backend import run_study
from nas.retrain import retrain
from nas.study import study_counts
from softshare.runtime import cuda_has_fast_bf16
from softshare.train import TrainConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
DATA = {"synthetic_train": 512, "synthetic_test": 128, "image_size": 16}


def _cfg(name: str, **kw) -> StudyConfig:
    base = dict(
        name=name,
        preset="smoke",
        n_trials=2,
        data=DATA,
        recipe={"epochs": 2, "batch_size": 64},
        device="cuda",
        early_stopping={"enabled": False},
        baselines="none",
        space={"depths": [16], "widths": [1]},
    )
    return StudyConfig(**(base | kw))


def test_a_two_trial_study_then_a_retrain_on_the_card(tmp_path):
    folder = tmp_path / "g"
    study = run_study(_cfg("g"), folder)
    assert study_counts(study)["complete"] == 2
    for t in study.trials:
        metrics = json.loads((folder / "trials" / f"{t.number:04d}" / "metrics.json").read_text())
        assert metrics["device"].startswith("cuda")
    recipe = TrainConfig(epochs=1, batch_size=64, schedule="cosine", device="cuda")
    summary = retrain(folder, "best", recipe)
    seed = summary["seeds"][0]
    assert seed["device"].startswith("cuda") and 0.0 <= seed["test_acc"] <= 1.0
    # what the runtime asks (bf16 tensor cores, compute capability 8.0+), not
    # torch.cuda.is_bf16_supported(), which says yes on a V100 or a T4 that only emulate it
    assert seed["precision"] == ("bf16" if cuda_has_fast_bf16(torch.device("cuda")) else "fp32")


def test_two_packed_workers_share_the_card(tmp_path):
    study = run_study(_cfg("w", n_trials=2, workers=2), tmp_path / "w")
    assert study_counts(study)["complete"] == 2


def test_an_out_of_memory_trial_fails_and_gives_its_memory_back(tmp_path, monkeypatch):
    """The card runs out of memory inside train(), mid-step, where the model, its optimizer,
    the data on the card, the batch and its activations (and 256 MiB more) are alive in the
    frames the error goes through. After the trial nothing of the failed run is held. (The
    stand-in used to raise before train() ran, so it held nothing of a run.)"""
    warm = torch.ones(64, 64, device="cuda")
    (warm @ warm).sum().item()  # cuBLAS keeps a workspace once used: not the run's
    del warm
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    real_loss = torch.nn.functional.cross_entropy
    held, after_release = [], []

    def loss_then_run_out(logits, *args, **kwargs):
        if not held:
            extra = torch.empty(256 * 2**20, dtype=torch.uint8, device=logits.device)
            held.append(weakref.ref(extra))
            huge = torch.cuda.get_device_properties(logits.device).total_memory * 4
            torch.empty(huge, dtype=torch.uint8, device=logits.device)  # torch.OutOfMemoryError
        return real_loss(logits, *args, **kwargs)

    real_release = trial_module.release_memory

    def release_and_measure():
        real_release()
        torch.cuda.synchronize()
        after_release.append(torch.cuda.memory_allocated())

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", loss_then_run_out)
    monkeypatch.setattr(trial_module, "release_memory", release_and_measure)
    study = run_study(_cfg("oom"), tmp_path / "oom")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["reason"].startswith("out of GPU memory")
    assert held and held[0]() is None  # the 256 MiB the failed step held are free
    # The run's model, optimizer and data on the card are back too (a few MiB of slack for
    # what CUDA libraries keep once used; the failed run held over 256 MiB).
    assert after_release[0] - baseline < 16 * 2**20, (after_release[0], baseline)
    assert study_counts(study)["complete"] == 2  # and the study went on
