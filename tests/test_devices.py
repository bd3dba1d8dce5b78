"""nas.devices: GPU placement and out-of-memory handling, on the CPU: its pure decisions, and
the backends' use of them with stand-ins for CUDA (monkeypatched torch.cuda) and for Ray's
trial context. The same paths on a real card: tests/test_gpu_study.py (marked gpu)."""

import json
import os
import re
import types
import weakref

import optuna
import pytest
import torch
from optuna.trial import TrialState

import nas.optuna_backend as optuna_backend
import nas.retrain as retrain_module
from nas.config import StudyConfig
from nas.devices import (
    HEADROOM,
    Placement,
    apply_placement,
    check_ray_device,
    oom_reason,
    ray_placement,
    release_memory,
    visible_gpus,
    worker_placements,
)
from nas.optuna_backend import run_study
from nas.study import study_counts
from softshare.train import TrainConfig
from tests.studies import ONE_RUN, ONE_RUN_FLAGS, TINY_DATA, make_study, smoke_cfg

OOM_TEXT = "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 139 GiB"


# --- which cards a process sees ---------------------------------------------------------------


def test_visible_gpus_reads_cuda_visible_devices_else_counts():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 5"}, count=2) == ["2", "5"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-1a2b"}, count=1) == ["GPU-1a2b"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, count=0) == []  # set but empty: none
    assert visible_gpus({}, count=3) == ["0", "1", "2"]
    assert visible_gpus({}, count=0) == []


def test_visible_gpus_asks_torch_how_many_cards_there_are(monkeypatch):
    """CUDA_VISIBLE_DEVICES=-1 (every card hidden), a CPU-only torch or a machine without a
    driver: torch sees no card, so none is visible whatever the variable lists (it used to give
    ['-1'] and every worker was pinned to a card that is not there)."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == []  # a CPU-only torch
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3,-1,4"}) == ["3"]  # CUDA stops at -1
    assert visible_gpus({}) == ["0"]
    assert worker_placements(2, "auto", visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}, count=0)) == [
        Placement(),
        Placement(),
    ]


# --- --workers N: one card per worker, round-robin; several per card is packing ----------------


def test_workers_on_the_cpu_are_not_pinned():
    assert worker_placements(3, "cpu", ["0", "1"]) == [Placement()] * 3
    assert worker_placements(2, "auto", []) == [Placement()] * 2


def test_workers_round_robin_over_the_visible_cards():
    places = worker_placements(4, "auto", ["0", "1"])
    assert [p.visible for p in places] == ["0", "1", "0", "1"]
    assert {p.device for p in places} == {"cuda:0"}  # each worker sees its card as cuda:0
    assert {p.memory_fraction for p in places} == {round(HEADROOM / 2, 4)}  # two per card


def test_one_worker_per_card_has_no_memory_cap():
    places = worker_placements(2, "cuda", ["3", "5", "7"])
    assert [(p.device, p.visible, p.memory_fraction) for p in places] == [
        ("cuda:0", "3", None),
        ("cuda:0", "5", None),
    ]


def test_packing_mode_puts_every_worker_on_one_card_each_under_its_share():
    places = worker_placements(4, "auto", ["0"])
    assert [p.visible for p in places] == ["0"] * 4
    fraction = places[0].memory_fraction
    assert fraction == round(HEADROOM / 4, 4) and 4 * fraction < 1  # a little under a quarter


def test_uneven_round_robin_caps_only_the_shared_cards():
    places = worker_placements(3, "auto", ["0", "1"])
    assert [(p.visible, p.memory_fraction) for p in places] == [
        ("0", round(HEADROOM / 2, 4)),
        ("1", None),
        ("0", round(HEADROOM / 2, 4)),
    ]


def test_a_named_card_packs_every_worker_on_it_by_its_visible_name():
    places = worker_placements(2, "cuda:1", ["GPU-a", "GPU-b"])
    assert [p.visible for p in places] == ["GPU-b", "GPU-b"] and places[0].device == "cuda:0"


@pytest.mark.parametrize(
    "workers,device,gpus,match",
    [
        (0, "auto", ["0"], "workers must be >= 1"),
        (2, "cuda:2", ["0", "1"], "2 GPU.s. are visible: cuda:0 to cuda:1"),
        (2, "cuda", [], "no CUDA GPU is visible"),
        (2, "tpu", ["0"], "device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_impossible_worker_placements_are_refused(workers, device, gpus, match):
    with pytest.raises(ValueError, match=match):
        worker_placements(workers, device, gpus)
    assert worker_placements(1, "cuda:1", ["0", "1"])[0].visible == "1"  # the valid neighbour


def test_a_spawned_worker_is_pinned_before_it_trains(tmp_path, monkeypatch):
    """_worker_main, in this process with stand-ins: the environment is set, the device is the
    card's cuda:0, and the memory cap is applied before run_worker starts."""
    calls = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset-by-test")
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("threads", n)))
    monkeypatch.setattr(
        torch.cuda,
        "set_per_process_memory_fraction",
        lambda f, d=None: calls.append(("fraction", f, d, os.environ["CUDA_VISIBLE_DEVICES"])),
    )
    monkeypatch.setattr(
        optuna_backend, "run_worker", lambda cfg, *a, **k: calls.append(("run", cfg.device))
    )
    cfg = StudyConfig(name="p", preset="smoke", data=TINY_DATA, device="auto", workers=4)
    place = worker_placements(4, "auto", ["3"])[1]
    optuna_backend._worker_main(cfg.to_dict(), str(tmp_path), 1, 1, place, True)
    assert calls == [
        ("threads", 1),
        ("fraction", place.memory_fraction, 0, "3"),
        ("run", "cuda:0"),
    ]


def test_child_environment_is_set_while_a_worker_starts_then_restored(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with optuna_backend._child_environment(Placement("cuda:0", "1")):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with optuna_backend._child_environment(Placement("cuda:0", "0")):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with optuna_backend._child_environment(Placement()):  # not pinned: untouched
        assert "CUDA_VISIBLE_DEVICES" not in os.environ


# --- Ray: the device comes from what Ray assigned ---------------------------------------------


def test_a_ray_trial_given_no_gpu_trains_on_the_cpu():
    assert ray_placement("auto", [], 0) == Placement("cpu")
    assert ray_placement("cpu", [0], 1) == Placement("cpu")


def test_a_ray_trial_given_a_gpu_uses_cuda_0_of_its_visible_set():
    assert ray_placement("auto", [3], 1) == Placement("cuda:0")
    assert ray_placement("cuda:2", ["3"], 1) == Placement("cuda:0")  # a saved cuda:N is mapped
    assert ray_placement("cuda", [0, 1], 2) == Placement("cuda:0")  # whole GPUs: no cap


@pytest.mark.parametrize("share", [0.25, 0.5, 0.999])
def test_a_fractional_ray_trial_caps_its_memory_a_little_under_its_share(share):
    place = ray_placement("auto", [0], share)
    assert place.device == "cuda:0" and place.memory_fraction == round(HEADROOM * share, 4)
    assert place.memory_fraction < share


def test_a_gpu_device_without_gpus_per_trial_is_refused_in_one_line():
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=r"needs --gpus-per-trial > 0") as info:
            check_ray_device(device, 0)
        assert "\n" not in str(info.value)
        with pytest.raises(ValueError, match=r"needs --gpus-per-trial"):
            ray_placement(device, [], 0)  # inside a trial, should it get that far
    check_ray_device("cuda", 0.25)  # the valid neighbours
    check_ray_device("auto", 0)
    check_ray_device("cpu", 0)


def test_apply_placement_caps_the_first_visible_card(monkeypatch):
    calls = []
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, d=None: calls.append((f, d))
    )
    apply_placement(Placement("cuda:0", "0", 0.2375))
    apply_placement(Placement("cuda:0"))  # no cap: no call
    apply_placement(Placement())
    assert calls == [(0.2375, 0)]


# --- out of memory: a failed trial, its memory given back -------------------------------------


def test_oom_reason_names_gpu_memory_and_nothing_else():
    reason = oom_reason(torch.OutOfMemoryError(OOM_TEXT + "\nmore lines"))
    assert reason.startswith("out of GPU memory") and "Tried to allocate 20.00 GiB" in reason
    assert "\n" not in reason
    assert oom_reason(RuntimeError("CUDA error: device-side assert")) is None
    assert oom_reason(MemoryError()) is None


def test_release_memory_empties_the_cache_only_where_cuda_started(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    release_memory()
    assert emptied == []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    release_memory()
    assert emptied == [1]


def _study_cfg(name="oom", **kw):
    base = dict(
        n_trials=2,
        recipe={"epochs": 1},
        early_stopping={"enabled": False},
        baselines="none",
        space={"depths": [16], "widths": [1]},
    )
    return smoke_cfg(name, **(base | ONE_RUN | kw))


@pytest.mark.slow
def test_an_out_of_memory_trial_is_failed_its_memory_freed_and_the_study_goes_on(
    tmp_path, monkeypatch
):
    import nas.trial as trial_module

    real_train, real_release = trial_module.train, trial_module.release_memory
    held, freed_at_release = [], []

    def train_out_of_memory_once(model_config, cfg, data, **kw):
        if not held:
            activations = torch.ones(4_000_000)  # stands in for the card's memory the trial held
            held.append(weakref.ref(activations))
            raise torch.OutOfMemoryError(OOM_TEXT)
        return real_train(model_config, cfg, data, **kw)

    def release_and_check():
        real_release()
        freed_at_release.append(held[0]() is None)

    monkeypatch.setattr(trial_module, "train", train_out_of_memory_once)
    monkeypatch.setattr(trial_module, "release_memory", release_and_check)
    folder = tmp_path / "oom"
    study = run_study(_study_cfg(), folder)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    reason = failed[0].user_attrs["reason"]
    assert reason.startswith("out of GPU memory") and "Tried to allocate 20.00 GiB" in reason
    record = json.loads((folder / "trials" / f"{failed[0].number:04d}" / "trial.json").read_text())
    assert record["status"] == "failed" and record["reason"] == reason
    assert "OutOfMemoryError" in (folder / "trials" / "0000" / "error.txt").read_text()
    assert study_counts(study)["complete"] == 2  # the study went on to its two trained trials
    assert freed_at_release[0] is True  # nothing kept the failed trial's tensors alive
    assert len(freed_at_release) == 3  # released after every trial, the failed one included


# --- Ray's trainable, with Ray's trial context stood in -----------------------------------------


def _fake_tune(resources: dict, reports: list):
    context = types.SimpleNamespace(
        get_trial_resources=lambda: types.SimpleNamespace(required_resources=resources)
    )
    return types.SimpleNamespace(
        report=lambda metrics, checkpoint=None: reports.append(metrics),
        get_context=lambda: context,
        get_checkpoint=lambda: None,
        Checkpoint=types.SimpleNamespace(from_directory=lambda path: path),
    )


@pytest.mark.ray
@pytest.mark.parametrize(
    "gpu_ids,gpus,device,fraction",
    [
        ([], 0, "cpu", None),
        (["3"], 0.25, "cuda:0", round(HEADROOM * 0.25, 4)),
        ([1], 1, "cuda:0", None),
    ],
)
def test_ray_trial_trains_where_ray_placed_it_and_fails_cleanly_out_of_memory(
    tmp_path, monkeypatch, gpu_ids, gpus, device, fraction
):
    pytest.importorskip("ray")
    import nas.ray_backend as ray_backend
    import nas.trial as trial_module
    from nas.ray_search import PLAN, STUDY_TRIAL
    from softshare.data import load_dataset

    reports, seen, caps, released = [], [], [], []
    monkeypatch.setattr(ray_backend, "tune", _fake_tune({"CPU": 1, "GPU": gpus}, reports))
    monkeypatch.setattr(ray_backend, "_assigned_gpus", lambda: list(gpu_ids))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, d=None: caps.append((f, d))
    )
    monkeypatch.setattr(trial_module, "release_memory", lambda: released.append(1))

    def train_out_of_memory(model_config, train_config, data, **kw):
        seen.append(train_config.device)
        raise torch.OutOfMemoryError(OOM_TEXT)

    monkeypatch.setattr(trial_module, "train", train_out_of_memory)
    cfg = _study_cfg(name="ray-oom", device="auto")
    data = load_dataset(cfg.data_config())
    config = {STUDY_TRIAL: 0, PLAN: "SWRN-16-1-1"}
    ray_backend.train_trial(config, data, cfg.to_dict(), str(tmp_path))
    assert seen == [device]
    assert caps == ([] if fraction is None else [(fraction, 0)])
    assert released == [1]
    final = reports[-1]
    assert final["final"] and final["outcome"] == "failed"
    assert final["reason"].startswith("out of GPU memory")


@pytest.mark.ray
@pytest.mark.parametrize(
    "study_device,gpu_ids,gpus,device,fraction",
    [
        ("cuda:1", ["1"], 1, "cuda:0", None),  # the one card Ray made visible is cuda:0 here
        ("auto", [], 0, "cpu", None),  # given no GPU: the CPU, not cuda:0 outside Ray's count
        ("auto", ["0"], 0.5, "cuda:0", round(HEADROOM * 0.5, 4)),  # a fraction: capped
    ],
)
def test_an_inherit_parent_trains_where_ray_placed_its_task(
    tmp_path, monkeypatch, study_device, gpu_ids, gpus, device, fraction
):
    """--fidelity inherit on Ray: the parent task trained on the study's device, whatever Ray
    gave it: cuda:1 raised in a task that sees one card, a task given no GPU trained on cuda:0,
    a fractional one without its memory cap."""
    pytest.importorskip("ray")
    import nas.ray_backend as ray_backend

    trained, caps = [], []
    resources = {"CPU": 1.0, "GPU": gpus}  # what Ray's runtime context says (stood in)
    monkeypatch.setattr(ray_backend, "_assigned_resources", lambda: resources, raising=False)
    monkeypatch.setattr(ray_backend, "_assigned_cpus", lambda: 1.0, raising=False)  # before
    monkeypatch.setattr(ray_backend, "_assigned_gpus", lambda: list(gpu_ids))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, d=None: caps.append((f, d))
    )
    monkeypatch.setattr(
        ray_backend,
        "ensure_parent",
        lambda cfg, folder, data, name, recipe=None: trained.append(cfg.train_config().device),
    )
    cfg = _study_cfg(name="ray-parent", device=study_device, fidelity="inherit")
    ray_backend._parent_task(cfg.to_dict(), str(tmp_path), None, "WRN-16-1")
    assert trained == [device]
    assert caps == ([] if fraction is None else [(fraction, 0)])


@pytest.mark.ray
def test_run_ray_refuses_cuda_without_gpus_per_trial_before_anything(tmp_path):
    pytest.importorskip("ray")
    from nas.ray_backend import RayOptions, run_ray

    with pytest.raises(ValueError, match="--device cuda needs --gpus-per-trial > 0"):
        run_ray(_study_cfg(name="r", device="cuda"), tmp_path / "r", RayOptions())
    assert not (tmp_path / "r").exists()


# --- retrain: the test set measured as the run trained ----------------------------------------


@pytest.mark.slow
def test_retrain_tests_on_the_recipes_device_and_precision(tmp_path, monkeypatch):
    got = []

    def recording_evaluate(model, split, mean, std, **kw):
        got.append(
            {
                "model_device": next(model.parameters()).device,
                "split_device": split.images.device,
                "weights_channels_last": next(
                    p for p in model.parameters() if p.dim() == 4
                ).is_contiguous(memory_format=torch.channels_last),
            }
            | kw
        )
        return 0.5, 0.25

    monkeypatch.setattr(retrain_module, "evaluate", recording_evaluate)
    folder = make_study(tmp_path / "s", [("SWRN-16-1-1", 0.6, "COMPLETE", {})])
    recipe = TrainConfig(
        epochs=1, batch_size=32, schedule="cosine", device="cpu", precision="bf16"
    )
    summary = retrain_module.retrain(folder, "best", recipe)
    assert got == [
        {
            "model_device": torch.device("cpu"),
            "split_device": torch.device("cpu"),
            "weights_channels_last": True,
            "batch_size": recipe.eval_batch_size,
            "precision": "bf16",
            "channels_last": True,
        }
    ]
    assert summary["seeds"][0]["test_acc"] == 0.25 and summary["seeds"][0]["precision"] == "bf16"


@pytest.mark.slow
def test_queued_trials_run_even_when_they_fill_every_slot(tmp_path):
    """bench_packing queues its whole plan list; baselines paper:N with N = n_trials do too."""
    study = run_study(_study_cfg(name="queue", baselines="paper:2"), tmp_path / "q")
    assert study_counts(study)["complete"] == 2
    assert all(t.user_attrs.get("baseline") for t in study.trials)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_workers_with_every_card_hidden_train_on_the_cpu(tmp_path, search_cli, monkeypatch):
    """CUDA_VISIBLE_DEVICES=-1 and --workers 2 (issue 25): every worker used to be pinned to
    cuda:0 and crash, and the study ended with no trial and exit 0."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    done = search_cli(
        *("study", "hidden", "--results-dir", str(tmp_path), "--workers", "2", "--quiet"),
        *("--n-trials", "2", "--epochs", "1", "--train-subset", "100", "--image-size", "8"),
        *ONE_RUN_FLAGS,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(
        study_name="hidden", storage=optuna_backend.open_storage(tmp_path / "hidden")
    )
    trained = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(trained) == 2 and all(t.user_attrs["device"].startswith("cpu") for t in trained)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_study_whose_workers_all_crash_fails_naming_the_first_error(tmp_path, monkeypatch):
    """Two spawned workers pinned to a card this machine lacks (what CUDA_VISIBLE_DEVICES=-1
    used to do): both die setting their memory cap, before any trial. The study used to log
    "worker(s) exited with errors" and return as if it had finished (search.py: exit 0)."""
    pinned = [Placement("cuda:0", "0", 0.47)] * 2
    monkeypatch.setattr(optuna_backend, "_worker_placements", lambda cfg: pinned)
    cfg = _study_cfg(name="crash", workers=2, baselines="none", device="auto")
    with pytest.raises(RuntimeError) as info:
        run_study(cfg, tmp_path / "crash")
    line = str(info.value)
    assert "\n" not in line and line.startswith("2 of 2 workers failed; the first, worker "), line
    assert re.search(r"worker [01]: \w*(Error|Exception): ", line), line  # the child's own error
    storage = optuna_backend.open_storage(tmp_path / "crash")
    assert not study_counts(optuna.load_study(study_name="crash", storage=storage))


def test_the_automatic_eval_batch_fits_the_processs_memory_cap(monkeypatch):
    """A worker capped at a quarter of an 80 GiB card sizes its evaluation batch from its share,
    not from the card's free memory (which the other workers need)."""
    from softshare import evaluate

    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (70 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 3 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * gib)
    fraction = [1.0]
    monkeypatch.setattr(
        torch.cuda, "get_per_process_memory_fraction", lambda device=None: fraction[0]
    )
    cuda = types.SimpleNamespace(device=torch.device("cuda", 0))
    model = types.SimpleNamespace(
        parameters=lambda: iter([cuda]),
        modules=lambda: [types.SimpleNamespace(out_channels=640)],
    )
    split = types.SimpleNamespace(images=torch.empty(0, 3, 32, 32), __len__=None)
    split = type("Split", (), {"images": split.images, "__len__": lambda self: 10**7})()

    def expected(free: int) -> int:
        per_image = evaluate.LIVE_ACTIVATIONS * 640 * 32 * 32 * 2 + 3 * 32 * 32 * 5
        fits = int(evaluate.FREE_SHARE * free) // per_image
        return 1 << fits.bit_length() - 1

    assert evaluate.auto_batch_size(model, split, "bf16") == expected(71 * gib)  # uncapped
    fraction[0] = 0.2375  # HEADROOM / 4 workers on the card
    capped = evaluate.auto_batch_size(model, split, "bf16")
    assert capped == expected(int(0.2375 * 80 * gib) - 2 * gib) < expected(71 * gib)
