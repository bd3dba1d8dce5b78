"""Device and precision, chosen once: the CPU runs the same code as the GPU.

``resolve_device`` and ``resolve_precision`` (``"auto"``: bf16 where the device has native bf16
units); :func:`release_memory` empties the CUDA cache when a run ends.

Design: docs/design.md#softshareruntime
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import pathlib

import torch

__all__ = [
    "resolve_device",
    "resolve_precision",
    "cpu_has_fast_bf16",
    "cuda_has_fast_bf16",
    "autocast_context",
    "release_memory",
    "PRECISIONS",
]

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 dot products (avx512_bf16 or amx_bf16 flags)."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, so assume emulated bf16
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return "amx_bf16" in flags or "avx512_bf16" in flags


# bf16 tensor cores arrived with Ampere (compute capability 8.0); Volta (7.0) and Turing (7.5)
# run bf16 by emulation, slower than fp32 (NVIDIA Ampere architecture whitepaper).
NATIVE_BF16_CAPABILITY = (8, 0)


def cuda_has_fast_bf16(device: torch.device | str | int | None = None) -> bool:
    """True where the CUDA device (None: the current one) has bf16 tensor cores (capability >= 8.0)."""
    return tuple(torch.cuda.get_device_capability(device)) >= NATIVE_BF16_CAPABILITY


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, but got {device=}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} asked for, but no CUDA GPU is available; use --device cpu."
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} "
            f"GPU(s): cuda:0 to cuda:{torch.cuda.device_count() - 1}."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, but got {device=}.")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: what ``auto`` means on this device, or the explicit choice."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(PRECISIONS)}, but got {precision=}."
        )
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if cuda_has_fast_bf16(device) else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked, else a no-op context."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def release_memory(device: torch.device | None = None) -> None:
    """Collect garbage and, on CUDA, return the caching allocator's free blocks to the driver.

    Called when a run ends or raises (and by nas after every trial): what the run held is
    garbage by then, but the allocator keeps it reserved for this process until
    ``empty_cache``. ``device``: the run's; on the CPU, only the collection. None: whatever this
    process used, so the cache is emptied where CUDA has started (a no-op where it never did).
    """
    gc.collect()  # reference cycles (a model, an optimizer) would otherwise hold tensors
    if (device is None or device.type == "cuda") and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
