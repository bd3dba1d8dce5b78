"""bench/bench_trainer.py: --quick end to end, and the --json figures bench/gpu_check.py reads."""

import json
import os
import subprocess
import sys

import pytest

from tests import REPO
from tests.benches import load_bench

KEYS = {
    "device": str,
    "plan": str,
    "precision": str,
    "images_per_s": float,
    "baseline_images_per_s": float,
    "speedup": float,
    "goal": float,
    "mfu": (float, type(None)),
    "peak_tflops": (float, type(None)),
    "compile_images_per_s": (float, type(None)),
}


def _bench():
    return load_bench("bench_trainer")


@pytest.mark.parametrize(
    "name,peak",
    [
        ("NVIDIA H200", 989.0),
        ("NVIDIA GH200 480GB", 989.0),
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA A10G", None),
        ("Tesla V100-SXM2-16GB", None),
    ],
)
def test_the_bf16_peak_is_found_by_the_device_name(monkeypatch, name, peak):
    import torch

    b = _bench()
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    args = type("Args", (), {"peak_tflops": None})()
    assert b._peak_tflops(args, torch.device("cuda")) == peak
    args.peak_tflops = 50.0
    assert b._peak_tflops(args, torch.device("cuda")) == 50.0
    assert b._peak_tflops(type("Args", (), {"peak_tflops": None})(), torch.device("cpu")) is None


@pytest.mark.slow
def test_bench_trainer_quick_writes_the_figures(tmp_path):
    out = tmp_path / "trainer.json"
    done = subprocess.run(
        [sys.executable, "bench/bench_trainer.py", "--quick", "--threads", "1", "--json", str(out),
         "--peak-tflops", "1"],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model FLOPs:" in done.stdout and "MFU" in done.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == set(KEYS)
    assert all(isinstance(figures[k], t) for k, t in KEYS.items()), figures
    assert figures["device"] == "cpu" and figures["plan"] == "SWRN-16-1-2"
    assert figures["peak_tflops"] == 1.0 and 0 < figures["mfu"] < 1
    assert figures["compile_images_per_s"] is None  # off on the CPU unless --compile


def test_a_warm_up_of_any_length_runs_even_with_warmup_0(tmp_path):
    """--warmup 0 with --compile: main warms the compiled runner up for one step anyway, and
    _ours' runner knew only the lengths --warmup and --steps (KeyError: 1)."""
    import types

    import torch

    from softshare import ModelConfig
    from softshare.data import DataConfig, load_dataset

    b = _bench()
    data = load_dataset(
        DataConfig(dataset="synthetic", val_fraction=0.0, synthetic_train=64, image_size=8)
    )
    args = types.SimpleNamespace(steps=2, warmup=0, batch_size=8)
    go = b._ours(ModelConfig("SWRN-16-1-1"), data, args, torch.device("cpu"), "fp32")
    go(1)  # the warm-up main runs with --compile
    go(2)  # the timed steps
    go(3)  # longer than the pool of (warmup + steps) batches: wraps around
