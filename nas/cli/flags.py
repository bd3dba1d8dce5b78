"""Command-line flags built from the config dataclasses: each flag is one config field
(:func:`softshare.strict.option`), whose name, help, choices, bounds, default and argument
group exist there once; a flag's type comes from the field's annotation."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

EXIT_USAGE = 2

__all__ = [
    "OneLineParser",
    "add_config_flags",
    "argument_group",
    "config_flag",
    "field_type",
    "flag_fields",
    "flag_name",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line (what is wrong, what is accepted), no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def count(text: str) -> int:
    """A parameter count: 500000, 500k, 1.5M."""
    from nas.retrain import parse_count

    try:  # a plain number must be whole; 1.5M and 250k may have decimals
        value = int(text) if text.strip()[-1:].isdigit() else parse_count(text)
    except (ValueError, IndexError):
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a parameter count >= 1 such as 500000, 500k or 1.5M, got {text!r}"
        )
    return value


count.__name__ = "parameter count"


def float_in(low: float, high: float | None = None, *, open_low: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = value > low if open_low else value >= low
        if not ok or (high is not None and value > high) or value != value:
            bound = f"{'>' if open_low else '>='} {low}" + (
                f" and <= {high}" if high is not None else ""
            )
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs such as 60,120,160, got {text!r}"
        ) from None


# Parsers a field's type cannot tell, named by the field's ``parse`` metadata.
_PARSERS = {"count": count, "int_list": int_list}


def _field(cls, name: str):
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def field_type(cls, name: str) -> object:
    """The type of config field ``cls.name`` as Python resolves it (``typing.get_type_hints``,
    whether or not the module postpones annotations), ``X | None`` read as ``X``."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _value_parser(cls, f):
    meta = f.metadata
    if "parse" in meta:
        return _PARSERS[meta["parse"]]
    kind = field_type(cls, f.name)
    if kind is int:
        return int_at_least(meta.get("min", 0))
    if kind is float:
        if "gt" in meta:
            return float_in(meta["gt"], meta.get("max"), open_low=True)
        return float_in(meta.get("min", float("-inf")), meta.get("max"))
    return str


def flag_name(cls, name: str) -> str:
    """The command-line flag of config field ``cls.name``: its ``flag`` metadata, else
    ``--name`` (``--no-name`` for a bool that is on by default)."""
    f = _field(cls, name)
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    off = field_type(cls, name) is bool and f.default
    return ("--no-" if off else "--") + name.replace("_", "-")


def config_flag(
    group,
    cls,
    name: str,
    *,
    dest: str | None = None,
    given_only: bool = False,
    show_default: bool | None = None,
):
    """Add to ``group`` the flag of config field ``cls.name``, from the field's metadata.

    A bool field that is on by default becomes ``--no-NAME``, one that is off ``--NAME``.
    ``given_only``: the flag's default is "not given" (a study's preset or saved study fills it
    in), else the field's own default. ``show_default`` (default: not ``given_only``) puts the
    field's default in the help."""
    show_default = not given_only if show_default is None else show_default
    f = _field(cls, name)
    meta = f.metadata
    kw: dict = {"dest": dest or name, "help": meta["help"]}
    flag = flag_name(cls, name)
    if field_type(cls, name) is bool:
        kw["action"] = "store_false" if f.default else "store_true"
    else:
        kw["type"] = _value_parser(cls, f)
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        else:
            kw["metavar"] = meta.get("metavar", name.upper())
        if "const" in meta:
            kw.update(nargs="?", const=meta["const"])
            kw["help"] += f" ({meta['const']} if given bare)"
        if show_default and f.default is not None:
            shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            kw["help"] += f" (default {shown})"
    kw["default"] = argparse.SUPPRESS if given_only else f.default
    group.add_argument(flag, **kw)


def flag_fields(cls) -> tuple[str, ...]:
    """The fields of ``cls`` that are command-line flags (declared with ``option``)."""
    return tuple(f.name for f in dataclasses.fields(cls) if "help" in f.metadata)


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls,
    titles: dict[str, str],
    *,
    group: str | None = None,
    section: str | None = None,
    in_study: bool = False,
    groups: tuple[str | None, ...] | None = None,
    show_default: bool = True,
) -> None:
    """A flag for every field of ``cls`` declared with :func:`softshare.strict.option`.

    Flags are collected into argument groups by their key: the field's ``group`` metadata,
    else ``group``, else ``section``; a group's title is ``titles[key]`` (a key without a
    title: the parser's own options). ``groups``: only the fields of these keys. ``section``:
    the dest is ``section.name`` ("recipe.epochs", the field's place in a study config), else
    the field's name. ``in_study``: fields marked ``advanced`` are left out, and a flag not
    given stays unset (the preset or the saved study fills it in); else its default is the
    field's. ``show_default``: the field's default in the help (a ``hide_default`` field never)."""
    for f in dataclasses.fields(cls):
        meta = f.metadata
        key = meta.get("group", group or section)
        if "help" not in meta or (in_study and meta.get("advanced")):
            continue
        if groups is not None and key not in groups:
            continue
        config_flag(
            argument_group(parser, titles[key]) if key in titles else parser,
            cls,
            f.name,
            dest=f"{section}.{f.name}" if section else f.name,
            given_only=in_study,
            show_default=show_default and not meta.get("hide_default"),
        )


def argument_group(parser: argparse.ArgumentParser, title: str):
    """The parser's argument group titled ``title``, made on first use."""
    for g in parser._action_groups:  # argparse keeps no lookup by title
        if g.title == title:
            return g
    return parser.add_argument_group(title)
