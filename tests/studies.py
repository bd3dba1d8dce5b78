"""Hand-made studies on disk (journal storage + study.json), with known values, no training; and
TINY_DATA, the generated data that the test studies which do train use."""

from __future__ import annotations

import pathlib

from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nas.config import StudyConfig, save_study_config
from nas.storage import open_storage, open_study
from nas.trial import trial_attrs
from softshare import parse_plan
from softshare.train import TrainConfig

# Generated data small enough for a trial of a few seconds on a CPU (StudyConfig.data).
TINY_DATA = {"synthetic_train": 200, "synthetic_test": 40, "image_size": 12}
# One run per architecture (no baseline seeds, no confirmation), for the study tests that are
# not about replicates (tests/test_replicates.py is): StudyConfig(**ONE_RUN, ...).
ONE_RUN = {"baseline_seeds": 1, "confirm_seeds": 0}
ONE_RUN_FLAGS = ("--baseline-seeds", "1", "--confirm-seeds", "0")


def smoke_cfg(name: str, **kw) -> StudyConfig:
    """A smoke study that trains in seconds on TINY_DATA: 3 trials, one baseline, 2 epochs, on
    the CPU; ``kw`` overrides any field."""
    base = dict(
        name=name,
        preset="smoke",
        n_trials=3,
        baselines="paper:1",
        data=TINY_DATA,
        recipe={"epochs": 2},
        device="cpu",
    )
    return StudyConfig(**(base | kw))


def make_study(folder: pathlib.Path, trials: list[tuple], name: str = "hand") -> pathlib.Path:
    """trials: (plan text, val accuracy or None, state name, extra user attrs) per trial."""
    cfg = StudyConfig(
        name=name,
        preset="smoke",
        n_trials=max(len(trials), 1),
        device="cpu",
        data=dict(TINY_DATA),
    )
    folder.mkdir(parents=True, exist_ok=True)
    save_study_config(cfg, folder)
    study = open_study(name, open_storage(folder))
    for plan_text, acc, state, extra in trials:
        plan = parse_plan(plan_text)
        status = {"FAIL": "failed"}.get(state, state.lower())
        curve = [acc] if acc is not None else []
        attrs = (
            trial_attrs(plan, (10, 3, 12), {"seed": 0})
            | {"status": status, "curve": curve}
            | extra
        )
        study.add_trial(
            create_trial(
                state=TrialState[state],
                values=[acc, attrs["params"]] if state == "COMPLETE" else None,
                params={"depth": plan.depth},
                distributions={"depth": CategoricalDistribution([10, 16, 22])},
                user_attrs=attrs,
            )
        )
    return folder


def quick_recipe(**kw) -> TrainConfig:
    """A recipe of a few CPU seconds on generated data (3 epochs, batch 32, fp32); ``kw``
    overrides any field."""
    return TrainConfig(
        **(
            {
                "epochs": 3,
                "batch_size": 32,
                "schedule": "cosine",
                "device": "cpu",
                "precision": "fp32",
                "lr": 0.05,
            }
            | kw
        )
    )
