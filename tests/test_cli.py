"""nas.cli: every flag comes from one config field, grouped by its key; search.py only wires."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types

import pytest

import search
from nas.cli.commands import STUDY_TITLES, TRAIN_TITLES
from nas.cli.flags import add_config_flags, flag_fields
from nas.config import StudyConfig
from nas.early_stop import StopRule
from nas.ray_options import RayOptions
from softshare.data import DataConfig
from softshare.train import TrainConfig


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(
        a for a in search.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return sub.choices[name]


def _groups(parser: argparse.ArgumentParser) -> dict[str, str]:
    """dest -> title of the argument group it is shown in."""
    return {a.dest: g.title for g in parser._action_groups for a in g._group_actions}


def _meta(cls, name: str) -> dict:
    return next(f for f in dataclasses.fields(cls) if f.name == name).metadata


def test_the_study_command_has_a_flag_for_every_study_field_in_the_group_of_its_section():
    shown = _groups(_subparser("study"))
    for cls, section in (
        (DataConfig, "data"),
        (TrainConfig, "recipe"),
        (StopRule, "early_stopping"),
    ):
        for name in flag_fields(cls):
            meta, dest = _meta(cls, name), f"{section}.{name}"
            if meta.get("advanced") or meta.get("group", section) != section:
                assert dest not in shown, dest  # a single run's knob, or a runtime one
            else:
                assert shown[dest] == STUDY_TITLES[section], dest
    for name in flag_fields(StudyConfig):
        group = _meta(StudyConfig, name).get("group")
        assert shown[name] == (STUDY_TITLES[group] if group else "options"), name
    for name in flag_fields(RayOptions):
        assert shown[name] == STUDY_TITLES["backend"], name
    assert shown["quiet"] == STUDY_TITLES["runtime"] == shown["device"]


def test_train_and_retrain_take_every_recipe_field_grouped_as_declared():
    for command in ("train", "retrain"):
        shown = _groups(_subparser(command))
        for name in flag_fields(TrainConfig):
            group = _meta(TrainConfig, name).get("group", "recipe")
            assert shown[name] == TRAIN_TITLES[group], (command, name)
    shown = _groups(_subparser("train"))
    assert all(shown[name] == "data" for name in flag_fields(DataConfig))


def test_a_new_field_becomes_a_flag_where_its_metadata_puts_it():
    source = (
        "from dataclasses import dataclass\n"
        "from softshare.strict import option\n"
        "@dataclass(frozen=True)\n"
        "class Opts:\n"
        "    size: int = option(2, 'a size', min=1)\n"
        "    budget: int | None = option(None, 'a budget', parse='count')\n"
        "    knob: float = option(0.5, 'an expert knob', advanced=True)\n"
        "    where: str = option('here', 'a place', group='runtime')\n"
        "    plain: int = 3\n"
    )
    module = types.ModuleType("cli_opts")
    sys.modules[module.__name__] = module
    try:
        exec(source, module.__dict__)
        titles = {"things": "things", "runtime": "runtime"}
        single = argparse.ArgumentParser()
        add_config_flags(single, module.Opts, titles, group="things")
        got = single.parse_args(["--size", "4", "--budget", "1.5M", "--knob", "0.1"])
        assert (got.size, got.budget, got.knob, got.where) == (4, 1_500_000, 0.1, "here")
        assert {d: t for d, t in _groups(single).items() if d != "help"} == {
            "size": "things",
            "budget": "things",
            "knob": "things",
            "where": "runtime",
        }
        study = argparse.ArgumentParser()
        add_config_flags(study, module.Opts, titles, section="things", in_study=True)
        got = study.parse_args(["--size", "5"])
        assert vars(got) == {"things.size": 5}  # not given: unset; advanced: no flag at all
        with pytest.raises(SystemExit):
            study.parse_args(["--knob", "0.1"])
    finally:
        del sys.modules[module.__name__]


def test_flag_types_come_from_the_type_hints_with_or_without_postponed_annotations():
    import argparse
    import sys
    import types

    from nas.cli.flags import config_flag

    source = (
        "from dataclasses import dataclass\n"
        "from softshare.strict import option\n"
        "@dataclass(frozen=True)\n"
        "class Opts:\n"
        "    count: int = option(2, 'a count', min=1)\n"
        "    rate: float | None = option(None, 'a rate', gt=0.0)\n"
        "    fast: bool = option(False, 'go fast')\n"
    )
    for header in ("", "from __future__ import annotations\n"):
        module = types.ModuleType("opts_module")  # get_type_hints resolves names in its module
        sys.modules[module.__name__] = module
        exec(header + source, module.__dict__)
        parser = argparse.ArgumentParser()
        for name in ("count", "rate", "fast"):
            config_flag(parser, module.Opts, name)
        got = parser.parse_args(["--count", "3", "--rate", "0.5", "--fast"])
        assert (got.count, got.rate, got.fast) == (3, 0.5, True) and type(got.count) is int
        with pytest.raises(SystemExit):
            parser.parse_args(["--count", "0"])  # the field's min, from its metadata
    del sys.modules["opts_module"]
