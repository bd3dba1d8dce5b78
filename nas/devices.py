"""Which device a trial runs on, and how trials share a GPU: decisions kept pure, so the CPU tests them.

:func:`worker_placements` (``--workers N``) and :func:`ray_placement` (``--gpus-per-trial``)
give a :class:`Placement`; :func:`apply_placement` applies it in the trial's process.

Design: docs/design.md#nasdevices
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from softshare.runtime import release_memory  # after every trial: softshare's own

__all__ = [
    "HEADROOM",
    "Placement",
    "apply_placement",
    "check_ray_device",
    "oom_reason",
    "ray_placement",
    "release_memory",
    "visible_gpus",
    "worker_placements",
]

log = logging.getLogger(__name__)
HEADROOM = 0.95  # of a share: room for each process's CUDA context, outside the allocator's cap


@dataclass(frozen=True)
class Placement:
    """Where one process trains.

    Attributes:
        device: the trial's device inside the process, ``"cpu"`` or ``"cuda:0"`` (a pinned
            process sees its card as ``cuda:0``), or None to keep the study's setting.
        visible: ``CUDA_VISIBLE_DEVICES`` for the process (set before CUDA starts), or None to
            leave the environment as it is.
        memory_fraction: cap of the process's share of its card's memory, in (0, 1]; None: none.
    """

    device: str | None = None
    visible: str | None = None
    memory_fraction: float | None = None


def _is_gpu_device(device: str) -> bool:
    return device == "cuda" or device.startswith("cuda:")


def visible_gpus(environ: dict | None = None, count: int | None = None) -> list[str]:
    """The cards this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (indices or UUIDs).

    How many: ``count``, by default what torch sees (``torch.cuda.device_count()``), never what
    the variable lists: ``-1`` (the usual way to hide every card), a CPU-only torch or a machine
    without a driver see none, and CUDA ignores every name after the first it does not know.
    Which: the first ``count`` names of ``CUDA_VISIBLE_DEVICES`` when set, else ``0 .. count - 1``."""
    environ = os.environ if environ is None else environ
    count = torch.cuda.device_count() if count is None else count
    if "CUDA_VISIBLE_DEVICES" in environ:
        names = [g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
        return names[:count]
    return [str(i) for i in range(count)]


def _share(n: int) -> float | None:
    """The memory cap of one of ``n`` processes on a card; None for a card of its own."""
    return None if n <= 1 else round(HEADROOM / n, 4)


def worker_placements(workers: int, device: str, gpus: Sequence[str]) -> list[Placement]:
    """One placement per local worker (``--workers``) of a study on ``device`` with ``gpus`` visible.

    ``cpu``, or ``auto`` without a GPU: no pinning. ``auto``/``cuda``: worker ``k`` on card
    ``gpus[k % len(gpus)]``; ``cuda:N``: every worker on card ``gpus[N]`` (packing). Workers that
    share a card cap their memory at a share of it (``HEADROOM / workers on the card``).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, but got {workers=}.")
    if device == "cpu" or (device == "auto" and not gpus):
        return [Placement()] * workers
    if not _is_gpu_device(device) and device != "auto":
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, but got {device=}.")
    if not gpus:
        raise ValueError(
            f"device {device!r} asked for, but no CUDA GPU is visible; use --device cpu."
        )
    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        if not 0 <= index < len(gpus):
            raise ValueError(
                f"device {device!r} asked for, but {len(gpus)} GPU(s) are visible: "
                f"cuda:0 to cuda:{len(gpus) - 1}."
            )
        cards = [gpus[index]] * workers
    else:
        cards = [gpus[k % len(gpus)] for k in range(workers)]
    per_card = Counter(cards)
    return [Placement("cuda:0", card, _share(per_card[card])) for card in cards]


def check_ray_device(device: str, gpus_per_trial: float) -> None:
    """Refuse a GPU device for Ray trials that are given no GPU (they would run outside Ray's
    accounting, all on the first card); ValueError in one line."""
    if _is_gpu_device(device) and gpus_per_trial <= 0:
        raise ValueError(
            f"--device {device} needs --gpus-per-trial > 0 with --backend ray (Ray gives a trial "
            f"a GPU only when it asks for one); add e.g. --gpus-per-trial 1, or 0.25 to pack four "
            f"trials per card, or use --device auto to train on the CPU."
        )


def ray_placement(device: str, gpu_ids: Sequence, gpus_per_trial: float) -> Placement:
    """Where a Ray trial trains, from what Ray assigned it (``ray.get_gpu_ids()``).

    No GPU assigned: the CPU (``cuda``/``cuda:N`` is refused, :func:`check_ray_device`). GPUs
    assigned: ``cuda:0``, the first card of the set Ray made visible (a saved ``cuda:N`` would
    name a card the trial was not given); a fraction ``gpus_per_trial < 1`` caps the trial's
    memory at that share of the card, a little under.
    """
    if device == "cpu":
        return Placement("cpu")
    if not gpu_ids:
        check_ray_device(device, 0)
        return Placement("cpu")
    fraction = None
    if 0 < gpus_per_trial < 1:
        fraction = round(HEADROOM * gpus_per_trial, 4)
    return Placement("cuda:0", memory_fraction=fraction)


def apply_placement(placement: Placement) -> None:
    """Cap this process's memory share as ``placement`` says (its ``visible`` must have been set
    before CUDA started: by the parent, in the child's environment)."""
    if placement.memory_fraction is not None:
        torch.cuda.set_per_process_memory_fraction(placement.memory_fraction, 0)
        log.info("memory capped at %.0f%% of the card", 100 * placement.memory_fraction)


def oom_reason(exc: BaseException) -> str | None:
    """The one-line reason of a trial that ran out of GPU memory, or None for any other error."""
    if not isinstance(exc, torch.OutOfMemoryError):
        return None
    first = (str(exc).splitlines() or [""])[0]
    return f"out of GPU memory (fewer trials per card or a smaller batch would fit): {first}"
