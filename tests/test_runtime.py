"""softshare.runtime: the device and precision a run gets, and memory release."""

import pytest
import torch

from softshare.runtime import cuda_has_fast_bf16, release_memory, resolve_precision

# compute capability per CUDA index: a V100, an A100, a T4, an H100
CAPABILITIES = {0: (7, 0), 1: (8, 0), 2: (7, 5), 3: (9, 0)}


@pytest.fixture
def four_cards(monkeypatch):
    """CUDA functions of a machine with four different cards, current device cuda:1."""

    def capability(device=None):
        index = torch.device("cuda", device) if isinstance(device, int) else device
        index = None if index is None else torch.device(index).index
        return CAPABILITIES[1 if index is None else index]

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    # counts emulated bf16 (a V100 or a T4 says yes): it must not decide
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


@pytest.mark.parametrize("index,expected", [(0, "fp32"), (1, "bf16"), (2, "fp32"), (3, "bf16")])
def test_auto_precision_is_bf16_only_on_cards_with_bf16_tensor_cores(four_cards, index, expected):
    device = torch.device("cuda", index)
    assert resolve_precision("auto", device) == expected
    assert cuda_has_fast_bf16(device) == (expected == "bf16")
    assert resolve_precision("bf16", device) == "bf16"  # an explicit choice stands
    assert resolve_precision("fp32", device) == "fp32"


def test_auto_precision_asks_the_chosen_card_not_the_current_one(four_cards):
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp32"  # current is cuda:1
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"  # no index: the current


def test_release_memory_empties_the_cuda_cache_only_for_a_cuda_run(monkeypatch):
    """With CUDA started (stood in here): a CPU run's release leaves the cache alone, a CUDA
    run's, or any run's when no device is named, empties it; each collects the garbage first
    (a reference cycle holding a tensor is gone). It used to be tested only where CUDA never
    started, where no implementation can empty the cache."""
    import weakref

    emptied = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    for device, expected in [
        (torch.device("cpu"), []),
        (torch.device("cuda", 0), [1]),
        (None, [1]),
    ]:
        emptied.clear()
        cycle = {"tensor": torch.ones(8)}
        cycle["self"] = cycle
        gone = weakref.ref(cycle["tensor"])
        del cycle
        release_memory(device)
        assert emptied == expected, device
        assert gone() is None, device


def test_release_memory_never_starts_cuda(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    release_memory(None)
    release_memory(torch.device("cuda", 0))
    assert emptied == []
