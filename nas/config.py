"""A study's whole identity: its space, data, recipe, early-stopping rule and budget.

Saved as ``results/<name>/study.json`` when the study is created; re-running the command loads
it, so a study is rebuilt from disk alone. Presets fill in what the user did not say.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
from dataclasses import asdict, dataclass, field, replace

from softshare.configs import strict_from_dict
from softshare.data import DataConfig
from softshare.train import TrainConfig

from .baselines import baseline_count
from .early_stop import StopRule
from .schema import STUDY_FILE
from .space import PRESETS, SearchSpace
from .validate import require_int

__all__ = [
    "StudyConfig",
    "SAMPLERS",
    "PRESET_DEFAULTS",
    "STUDY_FILE",
    "load_study_config",
    "save_study_config",
]

SAMPLERS = ("tpe", "nsga2", "random")
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# What each preset trains on and for how long (a trial's budget), beside its space; the first
# rung of early stopping follows the budget (a quarter of it) unless a preset says otherwise.
# smoke: generated 16x16 images, seconds a trial. cpu: a 5,000-image CIFAR-10 subset with 5,000
# validation images (standard error 0.7 points at 60%), 8 epochs: about 30 s an epoch for a
# depth-22 or -28 width-1 net on 2 cores, so about an hour for 20 trials with early stopping
# (docs/cifar10.md). paper: full CIFAR-10, a
# 30-epoch cosine budget with Cutout per trial (the retrain then uses the 200-epoch reference recipe).
PRESET_DEFAULTS: dict[str, dict] = {
    "smoke": {
        "data": {
            "dataset": "synthetic",
            "synthetic_train": 600,
            "synthetic_test": 200,
            "image_size": 16,
        },
        "recipe": {"epochs": 4, "batch_size": 64, "lr": 0.05, "schedule": "cosine"},
        "early_stopping": {"eta": 2},
    },
    "cpu": {
        "data": {"dataset": "cifar10", "train_subset": 5000},
        "recipe": {"epochs": 8, "batch_size": 128, "lr": 0.1, "schedule": "cosine"},
        "early_stopping": {"eta": 3},
    },
    "paper": {
        "data": {"dataset": "cifar10"},
        "recipe": {"epochs": 30, "batch_size": 128, "lr": 0.1, "schedule": "cosine", "cutout": 16},
        "early_stopping": {"eta": 3},
    },
}
# Fields that may differ between runs of the same study (where and how fast, not what).
RUNTIME_FIELDS = ("n_trials", "workers", "device", "precision", "storage", "created", "versions")


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines a study; JSON-native, validated on construction."""

    name: str
    preset: str = "smoke"
    space: dict = field(default_factory=dict)
    n_trials: int = 20
    sampler: str = "tpe"
    seed: int = 0
    data: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    early_stopping: dict = field(default_factory=dict)
    max_params: int | None = None
    baselines: str = "paper"
    workers: int = 1
    device: str = "auto"
    precision: str = "auto"
    storage: str | None = None
    created: str = ""
    versions: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"study name must be 1-100 letters, digits, '.', '_' or '-', but got name={self.name!r}."
            )
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; accepted: {', '.join(PRESETS)}.")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; accepted: {', '.join(SAMPLERS)}.")
        for name, low in (("n_trials", 1), ("workers", 1), ("seed", 0)):
            value = getattr(self, name)
            require_int(name, value, low)
        baseline_count(self.baselines, self.n_trials)  # validates the baselines field
        if self.max_params is not None:
            require_int("max_params", self.max_params, 1)
        if self.format_version != FORMAT_VERSION:
            raise ValueError(
                f"study format version {self.format_version!r} is not the {FORMAT_VERSION} this code reads."
            )
        (
            self.search_space(),
            self.data_config(),
            self.train_config(),
            self.stop_rule(),
        )  # validate all parts
        if self.data_config().val_fraction <= 0:
            raise ValueError(
                "a study selects models on a validation split: val_fraction must be > 0."
            )

    def search_space(self) -> SearchSpace:
        return SearchSpace.from_dict(PRESETS[self.preset].to_dict() | self.space)

    def data_config(self) -> DataConfig:
        return DataConfig.from_dict(PRESET_DEFAULTS[self.preset]["data"] | self.data)

    def train_config(self, **runtime) -> TrainConfig:
        base = PRESET_DEFAULTS[self.preset]["recipe"] | self.recipe
        return TrainConfig.from_dict(
            base
            | {"seed": self.seed, "device": self.device, "precision": self.precision}
            | runtime
        )

    def stop_rule(self) -> StopRule:
        values = PRESET_DEFAULTS[self.preset]["early_stopping"] | self.early_stopping
        return StopRule(max_epochs=self.train_config().epochs, **values)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "StudyConfig":
        return strict_from_dict(cls, data, "study config")

    def identity_differences(self, other: "StudyConfig") -> list[str]:
        """Fields, other than runtime ones, whose resolved values differ from ``other``'s."""
        mine, theirs = self.resolved(), other.resolved()
        return sorted(k for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k])

    def resolved(self) -> dict:
        """Every field with preset defaults applied (what actually runs)."""
        recipe = {
            k: v
            for k, v in self.train_config().to_dict().items()
            if k not in ("device", "precision", "seed")
        }
        return self.to_dict() | {
            "space": self.search_space().to_dict(),
            "data": self.data_config().to_dict(),
            "recipe": recipe,
            "early_stopping": asdict(self.stop_rule()),
        }


def save_study_config(config: StudyConfig, folder: pathlib.Path) -> StudyConfig:
    """Write ``folder/study.json`` (stamped with its creation time if it has none); returns
    the config as written."""
    from softshare.checkpoint import atomic_write_text, dumps

    if not config.created:
        config = replace(
            config,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
    atomic_write_text(folder / STUDY_FILE, dumps(config.to_dict()))
    return config


def load_study_config(folder: pathlib.Path) -> StudyConfig:
    """The study saved in ``folder``; one-line errors for a missing or damaged file."""
    path = pathlib.Path(folder) / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} is not a study folder (no {STUDY_FILE}); "
            f"create one with: python search.py study NAME"
        )
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path} is damaged and cannot be read as JSON ({exc}); restore it or start a new study."
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a study config object.")
    try:
        return StudyConfig.from_dict(data)
    except TypeError as exc:
        raise ValueError(f"{path} does not hold a valid study config ({exc}).") from None
