"""Hand-made studies on disk (journal storage + study.json), with known values, no training."""

from __future__ import annotations

import pathlib

from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nas.config import StudyConfig, save_study_config
from nas.storage import open_storage, open_study
from softshare import parse_plan


def make_study(folder: pathlib.Path, trials: list[tuple], name: str = "hand") -> pathlib.Path:
    """trials: (plan text, val accuracy or None, state name, extra user attrs) per trial."""
    cfg = StudyConfig(
        name=name,
        preset="smoke",
        n_trials=max(len(trials), 1),
        device="cpu",
        data={"synthetic_train": 200, "synthetic_test": 40, "image_size": 12},
    )
    folder.mkdir(parents=True, exist_ok=True)
    save_study_config(cfg, folder)
    study = open_study(name, open_storage(folder))
    for plan_text, acc, state, extra in trials:
        plan = parse_plan(plan_text)
        params = plan.num_parameters(10)
        attrs = {
            "plan": plan.text,
            "plan_name": plan.name,
            "shared": plan.is_shared,
            "depth": plan.depth,
            "width": plan.width,
            "templates": plan.templates_per_group(),
            "params": params,
            "macs": plan.multiply_adds(12),
            "status": state.lower(),
            "curve": [acc] if acc is not None else [],
            "seed": 0,
        } | extra
        study.add_trial(
            create_trial(
                state=TrialState[state],
                values=[acc, params] if state == "COMPLETE" else None,
                params={"depth": plan.depth},
                distributions={"depth": CategoricalDistribution([10, 16, 22])},
                user_attrs=attrs,
            )
        )
    return folder
