"""One rule for every config dataclass: built from a dict, unknown keys are refused by name."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

__all__ = ["strict_from_dict"]

T = TypeVar("T")


def strict_from_dict(cls: type[T], data: dict, what: str) -> T:
    """``cls(**data)``, but a key ``cls`` does not have raises ValueError listing the accepted ones."""
    known = {f.name for f in fields(cls)}
    if unknown := set(data) - known:
        raise ValueError(f"unknown {what} keys {sorted(unknown)}; accepted: {sorted(known)}.")
    return cls(**data)
