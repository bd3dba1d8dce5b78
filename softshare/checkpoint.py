"""Checkpoints: written atomically, read back only when they are ours and whole.

A checkpoint is a plain dict (``save_checkpoint``, ``load_checkpoint``) that carries its model,
train and data configs, so a model can be rebuilt from the file alone.

Design: docs/design.md#softsharecheckpoint
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import platform
import shutil
import tempfile
import uuid
import zipfile
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "atomic_write_text",
    "atomic_same_file",
    "environment",
    "FORMAT",
]

FORMAT = "softshare-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "model_config", "train_config", "model_state", "epoch")


class CheckpointError(ValueError):
    """A file that is not a whole softshare checkpoint of a version this code reads."""


def atomic_write(path: str | os.PathLike, write, shared: bool = False) -> None:
    """Replace ``path`` atomically with what ``write(handle)`` writes to a binary file handle.

    The one writer of the project: beside the target, flushed to disk, then renamed over it, so
    a reader (or a crash) sees the old file or the new one, never half of one. ``shared``: the
    file takes its folder's read/write bits (mkstemp makes it private), for a report or a
    dataset cache other users read."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if shared:
            os.chmod(tmp, path.parent.stat().st_mode & 0o666)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, payload: bytes, shared: bool = False) -> None:
    """Replace ``path`` with ``payload`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(payload), shared)


def atomic_write_text(path: str | os.PathLike, text: str, shared: bool = False) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically (:func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode(), shared)


def atomic_same_file(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make ``path`` atomically a second name of the file ``source`` (a hard link).

    A link to a temporary name beside ``path``, then renamed over it: a reader sees the old
    file or the new one. Safe because the project never writes a file in place (every write
    is :func:`atomic_write`'s new file renamed over the old), so the next write of ``source``
    leaves ``path`` as it was. Where the file system has no hard links, a copy (atomic too).
    """
    source, path = pathlib.Path(source), pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        os.link(source, tmp)
    except OSError:  # no hard links here (some network and FUSE file systems)
        with open(source, "rb") as src:
            atomic_write(path, lambda handle: shutil.copyfileobj(src, handle))
        return
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save ``state`` (must hold the required keys, except format/version) atomically."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    assert not missing, f"checkpoint state lacks {missing}"
    atomic_write(path, lambda handle: torch.save(payload, handle))


def _unreadable(exc: BaseException) -> str:
    """Why torch could not read a checkpoint, in our words (not torch's advice to file an issue)."""
    text = str(exc).lower()
    if isinstance(exc, pickle.UnpicklingError) and "weights only" in text:
        return (
            "it holds Python objects other than tensors and plain values; softshare never "
            "writes those and does not run them"
        )
    if isinstance(exc, (EOFError, zipfile.BadZipFile)) or any(
        hint in text for hint in ("central directory", "pytorchstreamreader", "unexpected eof")
    ):
        return "it is cut off or not a torch file (an interrupted write or copy?)"
    if isinstance(exc, OSError):
        return f"it cannot be read ({exc.strerror or type(exc).__name__})"
    return f"torch cannot read it ({type(exc).__name__}); it is damaged or not a checkpoint"


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load and check a checkpoint; raises FileNotFoundError or CheckpointError with one line."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        # weights_only: a checkpoint is data, never code to run.
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        OSError,
        ValueError,
    ) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {_unreadable(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a softshare checkpoint (expected a dict with format={FORMAT!r})."
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} is a version {payload.get('version')!r} checkpoint; this code reads version {VERSION}."
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(
            f"{path} lacks {', '.join(missing)}; it is not a whole softshare checkpoint."
        )
    return payload


def environment(device: torch.device | str) -> dict[str, str]:
    """Versions and device, stored with every result so it can be reproduced."""
    name = str(device)
    if torch.device(device).type == "cuda":
        name = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    else:
        name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    import torchvision  # local: only needed for the version string

    return {
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
        "device": name,
    }


def dumps(data: Any) -> str:
    """Stable, readable JSON for config and metrics files."""
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
