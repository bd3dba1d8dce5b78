"""softshare.strict: configs built from dicts refuse unknown keys by name; option() keeps a
flag's description in the field."""

from __future__ import annotations

import dataclasses

import pytest

from softshare.strict import option, strict_from_dict


@dataclasses.dataclass(frozen=True)
class _Opts:
    size: int = option(2, "a size", min=1, group="runtime")
    rate: float = 0.1


def test_a_dict_with_an_unknown_key_is_refused_naming_it_and_the_accepted_ones():
    assert strict_from_dict(_Opts, {"size": 3}, "test config") == _Opts(size=3)
    with pytest.raises(ValueError) as refused:
        strict_from_dict(_Opts, {"size": 3, "sise": 4}, "test config")
    assert str(refused.value) == "unknown test config keys ['sise']; accepted: ['rate', 'size']."


def test_option_keeps_the_default_and_the_flags_description_in_the_field():
    size, rate = dataclasses.fields(_Opts)
    assert size.default == 2 and dict(size.metadata) == {
        "help": "a size",
        "min": 1,
        "group": "runtime",
    }
    assert "help" not in rate.metadata  # a plain field: no flag
