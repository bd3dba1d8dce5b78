"""Two rules for every config dataclass: built from a dict, unknown keys are refused by name;
and a field that is a command-line option says so once, in its metadata (:func:`option`)."""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any, TypeVar

__all__ = ["option", "strict_from_dict"]

T = TypeVar("T")


def strict_from_dict(cls: type[T], data: dict, what: str) -> T:
    """``cls(**data)``, but a key ``cls`` does not have raises ValueError listing the accepted ones."""
    known = {f.name for f in fields(cls)}
    if unknown := set(data) - known:
        raise ValueError(f"unknown {what} keys {sorted(unknown)}; accepted: {sorted(known)}.")
    return cls(**data)


def option(default: Any, help: str, **meta: Any) -> Any:
    """A config field with its default and what its command-line flag shows, in its metadata:
    ``help``, and optionally ``min``/``max`` (bounds the flag's parser checks, inclusive; ``gt``:
    exclusive lower bound), ``choices``, ``flag`` (its name when not ``--field-name``),
    ``metavar``, ``const`` (the value of the flag given bare), ``parse`` (a parser the type
    cannot tell: "count" such as 1.5M, "int_list" such as 60,120), ``group`` (its argument
    group when not its class's), ``advanced`` (a flag of a single run, not of a study) and
    ``hide_default``. The command line (:mod:`nas.cli.flags`) builds its flags from these, so a
    default, a choice list, a help text and a flag's group exist once."""
    return field(default=default, metadata={"help": help, **meta})
