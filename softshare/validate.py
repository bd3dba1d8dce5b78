"""Argument checks shared by softshare and nas: one meaning of "an integer" and "a number".

Integers are ``numbers.Integral`` (Python and numpy integers) but never ``bool``: ``True`` is
not a trial count or a parameter budget. Numbers are ``numbers.Real`` and finite.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["is_int", "is_number", "require_in", "require_int"]


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


def require_in(
    name: str, value: object, low: float, high: float | None = None, integer: bool = False
) -> float:
    """``value`` (int or float as asked) when it is a number in [low, high] (``high`` None: no
    upper bound); else ValueError naming ``name`` and the range it accepts."""
    ok = (is_int(value) if integer else is_number(value)) and value >= low  # type: ignore[operator]
    if not ok or (high is not None and value > high):  # type: ignore[operator]
        allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} in {allowed}, but got {name}={value!r}.")
    return int(value) if integer else float(value)  # type: ignore[arg-type]


def require_int(name: str, value: object, minimum: int) -> int:
    """``value`` as a Python int; ValueError naming ``name`` unless it is an integer >= ``minimum``."""
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer >= {minimum}, but got {name}={value!r}.")
    return int(value)  # type: ignore[call-overload]
