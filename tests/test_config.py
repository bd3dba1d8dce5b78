"""StudyConfig: resolved once, stored resolved, one table of presets, one flag merge."""

import json

import numpy as np
import pytest

import nas.config as config
from nas.config import PRESETS, StudyConfig, load_study_config, preset_space, save_study_config
from nas.early_stop import StopRule
from nas.space import SearchSpace
from softshare.data import DataConfig
from softshare.train import TrainConfig


def test_parts_are_typed_and_resolved_when_made():
    cfg = StudyConfig(name="s", preset="cpu", recipe={"epochs": 6}, data={"root": "/d"})
    assert isinstance(cfg.search_space(), SearchSpace)
    assert isinstance(cfg.data_config(), DataConfig) and isinstance(cfg.stop_rule(), StopRule)
    assert isinstance(cfg.train_config(), TrainConfig)
    assert cfg.search_space() is cfg.search_space()  # made once, not rebuilt on each call
    # every value, not only the overrides: the preset's and the dataclass defaults are filled in
    assert cfg.recipe["epochs"] == 6 and cfg.recipe["lr"] == 0.1 and "momentum" in cfg.recipe
    assert cfg.recipe["lr_update"] == "step"  # the preset's, chosen by bench_proxy
    assert cfg.data["root"] == "/d" and cfg.data["train_subset"] is None
    assert cfg.space == preset_space("cpu").to_dict()
    assert "seed" not in cfg.recipe and cfg.train_config().seed == cfg.seed
    assert cfg.stop_rule().max_epochs == 6 and cfg.stop_rule().min_epochs == 2
    assert cfg.early_stopping["min_epochs"] is None  # a quarter of the budget, not a number
    with pytest.raises(ValueError, match="unknown preset"):
        preset_space("gpu")


def test_a_study_keeps_its_values_when_a_preset_changes_later(tmp_path, monkeypatch):
    cfg = StudyConfig(name="s", preset="smoke")
    save_study_config(cfg, tmp_path)
    stored = json.loads((tmp_path / "study.json").read_text())
    assert stored["format_version"] == 2 and stored["recipe"]["epochs"] == 4
    # a later release changes the preset: the study made before still runs as it was made
    monkeypatch.setitem(PRESETS["smoke"], "recipe", PRESETS["smoke"]["recipe"] | {"epochs": 9})
    monkeypatch.setitem(PRESETS["smoke"], "space", {"depths": [22], "widths": [1]})
    loaded = load_study_config(tmp_path)
    assert loaded.train_config().epochs == 4 and loaded.search_space().depths == (16,)
    assert loaded.identity_differences(cfg) == []
    assert StudyConfig(name="s", preset="smoke").train_config().epochs == 9  # a new one follows


def test_a_format_1_study_file_is_read_against_the_current_preset(tmp_path):
    old = {"name": "old", "preset": "smoke", "recipe": {"epochs": 3}, "format_version": 1}
    (tmp_path / "study.json").write_text(json.dumps(old))
    cfg = load_study_config(tmp_path)
    assert cfg.format_version == 2 and cfg.train_config().epochs == 3
    assert cfg.recipe["batch_size"] == PRESETS["smoke"]["recipe"]["batch_size"]
    (tmp_path / "study.json").write_text(json.dumps(old | {"format_version": 7}))
    with pytest.raises(ValueError, match="format version 7"):
        load_study_config(tmp_path)


def test_with_flags_merges_into_every_section_and_names_unknown_keys(tmp_path):
    cfg = StudyConfig(name="s", preset="cpu")
    merged = cfg.with_flags(
        {
            "n_trials": 7,
            "max_params": 300_000,
            "data.root": "/data",
            "recipe.epochs": 12,
            "early_stopping.margin": 0.02,
        }
    )
    assert merged.n_trials == 7 and merged.max_params == 300_000
    assert merged.data_config().root == "/data" and merged.data_config().train_subset is None
    assert merged.train_config().epochs == 12 and merged.train_config().lr == 0.1
    assert merged.stop_rule().margin == 0.02
    assert merged.stop_rule().min_epochs == 3  # the default first rung follows the new budget
    kept = cfg.with_flags({"early_stopping.min_epochs": 1}).with_flags({"recipe.epochs": 12})
    assert kept.stop_rule().min_epochs == 1  # one the user gave stays
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps({"max_templates": 2}))
    spaced = cfg.with_flags({"space_file": str(space_file)})
    assert spaced.search_space().max_templates == 2 and spaced.search_space().depths == (22, 28)
    for bad in ({"recipe_epochs": 3}, {"nothing.epochs": 3}, {"space": {}}):
        with pytest.raises(ValueError, match="unknown study setting"):
            cfg.with_flags(bad)
    with pytest.raises(ValueError, match="epochs must be"):
        cfg.with_flags({"recipe.epochs": 0})


def test_from_flags_resumes_the_saved_study_or_starts_from_the_preset():
    saved = StudyConfig(name="s", preset="cpu", recipe={"epochs": 5}, seed=3)
    again = StudyConfig.from_flags("s", {"n_trials": 30}, saved)
    assert again.preset == "cpu" and again.train_config().epochs == 5 and again.seed == 3
    assert again.n_trials == 30
    other = StudyConfig.from_flags("s", {"preset": "smoke"}, saved)
    assert other.preset == "smoke" and other.train_config().epochs == 4
    assert StudyConfig.from_flags("new", {}).preset == "smoke"


@pytest.mark.parametrize(
    "field,value,ok",
    [
        ("max_params", True, False),
        ("max_params", np.int64(500_000), True),
        ("max_params", 0, False),
        ("n_trials", np.int32(3), True),
        ("n_trials", False, False),
        ("seed", 1.0, False),
    ],
)
def test_integers_mean_one_thing(field, value, ok):
    if ok:
        assert getattr(StudyConfig(name="s", **{field: value}), field) == value
    else:
        with pytest.raises(ValueError, match=f"{field} must be an integer"):
            StudyConfig(name="s", **{field: value})


def test_the_presets_are_one_table():
    assert set(PRESETS) == {"smoke", "demo", "cpu", "paper"}
    for preset, parts in PRESETS.items():
        assert set(parts) == set(config.SECTIONS), preset
        StudyConfig(name="s", preset=preset)  # each one resolves


def test_identity_ignores_how_fast_a_trial_trains():
    cfg = StudyConfig(name="s", preset="smoke")
    fast = cfg.with_flags({"recipe.channels_last": False, "recipe.eval_batch_size": 64})
    assert fast.identity_differences(cfg) == []
    assert cfg.with_flags({"recipe.lr": 0.2}).identity_differences(cfg) == ["recipe"]


def test_the_refusal_of_a_resume_names_each_changed_setting():
    saved = StudyConfig(name="s", preset="cpu")
    now = saved.with_flags({"recipe.lr": 0.2, "seed": 3})
    assert now.difference_text(saved) == "recipe.lr 0.1 -> 0.2; seed 0 -> 3"
