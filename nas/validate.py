"""Argument checks shared by every part of ``nas``: one meaning of "an integer" and "a number".

Integers are ``numbers.Integral`` (Python and numpy integers) but never ``bool``: ``True`` is
not a trial count or a parameter budget. Numbers are ``numbers.Real`` and finite.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["is_int", "is_number", "require_int"]


def is_int(value: object) -> bool:
    """True for ints (numpy integers included), False for bools and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """True for finite ints and floats (numpy scalars included), False for bools, NaN, inf and the rest."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))  # type: ignore[arg-type]
    )


def require_int(name: str, value: object, minimum: int) -> None:
    """ValueError naming ``name`` unless ``value`` is an integer >= ``minimum``."""
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer >= {minimum}, but got {name}={value!r}.")
