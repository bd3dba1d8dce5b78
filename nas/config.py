"""A study's whole identity: its space, data, recipe, early-stopping rule and budget.

:class:`StudyConfig` is resolved once from a preset (:data:`PRESETS`) and the user's values, and
stored whole in ``study.json`` (:func:`save_study_config`, :func:`load_study_config`).

Design: docs/design.md#nasconfig
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
from dataclasses import asdict, dataclass, field, fields, replace

from softshare.data import DataConfig
from softshare.runtime import PRECISIONS
from softshare.strict import option, strict_from_dict
from softshare.train import RUNTIME_FIELDS as TRAIN_RUNTIME
from softshare.train import TrainConfig
from softshare.validate import is_number, require_int

from .baselines import baseline_count
from .early_stop import StopRule
from .schema import FIDELITIES, INHERIT, STUDY_FILE
from .space import SearchSpace, load_space

__all__ = [
    "StudyConfig",
    "SAMPLERS",
    "PRESETS",
    "preset_space",
    "STUDY_FILE",
    "load_study_config",
    "save_study_config",
]

SAMPLERS = ("tpe", "nsga2", "random")
FORMAT_VERSION = 2  # 2: every value resolved; 1 (read, then saved as 2): overrides of the preset
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# The presets, one table: each one's space, what a trial trains on and for how long (its
# budget), and its stopping rule; the first rung of early stopping follows the budget (a quarter
# of it) unless a preset says otherwise.
# smoke: depth 16, width 1; generated 16x16 images, seconds a trial.
# demo: depth 16, width 1; scikit-learn's real 8x8 handwritten digits (shipped with it: no
#   download), 360 validation images, 6 epochs: a few seconds a trial (make demo).
# cpu: depths 22 and 28 at width 1, where a bank has 4+ layers to share; all 45,000 CIFAR-10
#   training images for 2 epochs, the cosine lr updated every step, 5,000 validation images
#   (standard error 0.7 points at 60%). Chosen by bench/bench_proxy.py (issue 22, 2026-12-05): of
#   the candidates measured it ranks 12 plans most like 8 epochs on all the data (docs/
#   benchmarks.md); the old 5,000 images x 8 epochs ranked them at Kendall tau 0.35, because at
#   5,000 images the data, not the architecture, limits accuracy. About 2 minutes a run for
#   such a net on one bf16 core (docs/cifar10.md).
# paper: the paper's depths and widths; full CIFAR-10, a 30-epoch cosine budget with Cutout per
#   trial (the retrain then uses the 200-epoch reference recipe).
PRESETS: dict[str, dict] = {
    "smoke": {
        "space": {"depths": [16], "widths": [1], "max_templates": 3},
        "data": {
            "dataset": "synthetic",
            "synthetic_train": 600,
            "synthetic_test": 200,
            "image_size": 16,
        },
        "recipe": {"epochs": 4, "batch_size": 64, "lr": 0.05, "schedule": "cosine"},
        "early_stopping": {"eta": 2},
    },
    "demo": {
        "space": {"depths": [16], "widths": [1], "max_templates": 2},
        "data": {"dataset": "digits", "image_size": 8, "val_fraction": 0.25},
        "recipe": {
            "epochs": 6,
            "batch_size": 32,
            "lr": 0.05,
            "schedule": "cosine",
            "crop_padding": 1,
            "flip": False,
        },
        "early_stopping": {"eta": 2},
    },
    "cpu": {
        "space": {"depths": [22, 28], "widths": [1], "max_templates": 4},
        "data": {"dataset": "cifar10"},
        "recipe": {
            "epochs": 2,
            "batch_size": 128,
            "lr": 0.1,
            "schedule": "cosine",
            "lr_update": "step",
        },
        "early_stopping": {"eta": 3},
    },
    "paper": {
        "space": {"depths": [22, 28], "widths": [4, 8, 10], "max_templates": 6},
        "data": {"dataset": "cifar10"},
        "recipe": {"epochs": 30, "batch_size": 128, "lr": 0.1, "schedule": "cosine", "cutout": 16},
        "early_stopping": {"eta": 3},
    },
}
SECTIONS = ("space", "data", "recipe", "early_stopping")
# TrainConfig fields a StudyConfig keeps at its top level (the seed) or as runtime settings.
_RECIPE_TOP = ("seed", "device", "precision")


def preset_space(preset: str) -> SearchSpace:
    """The search space of ``preset``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; accepted: {', '.join(PRESETS)}.")
    return SearchSpace.from_dict(PRESETS[preset]["space"])


# Fields that may differ between runs of the same study (where and how fast, not what).
RUNTIME_FIELDS = ("n_trials", "workers", "device", "precision", "storage", "created", "versions")


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines a study; JSON-native, validated on construction."""

    # option(): the field's default and what its command-line flag shows (softshare.strict).
    name: str
    preset: str = option(
        "smoke",
        "space, data and budget defaults: smoke (seconds a trial, generated images), demo "
        "(seconds a trial, real handwritten digits), cpu (CIFAR-10, 2 epochs "
        "a trial, about an hour on 2 cores), paper (GPU)",
        choices=tuple(PRESETS),
        hide_default=True,  # a resumed study keeps its own
    )
    space: dict = field(default_factory=dict)
    n_trials: int = option(20, "architectures to train, baselines included", min=1)
    sampler: str = option("tpe", "tpe (multivariate), nsga2 or random", choices=SAMPLERS)
    seed: int = option(0, "sampler and training seed", min=0)
    data: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    early_stopping: dict = field(default_factory=dict)
    max_params: int | None = option(
        None,
        "parameter budget such as 500000, 500k or 1.5M: larger proposals are resampled, "
        "never trained",
        metavar="N",
        parse="count",
    )
    baselines: str = option(
        "paper",
        "paper: also train the paper's uniform plans (plain WRN-d-k, SWRN-d-k-s) spanning the "
        "space, a quarter of the trials; paper:N: N of them; none: search only",
        metavar="paper|paper:N|none",
    )
    baseline_seeds: int = option(
        2,
        "seeds each baseline trains with, the study's seed first: their spread is the study's "
        "noise yardstick (early stopping, the verdict); 1: one seed, no yardstick",
        min=1,
        metavar="N",
    )
    confirm_seeds: int = option(
        2,
        "fresh seeds the front and every plan within 2 SE of it train with once the search "
        "budget is spent; the front and the verdict then use each plan's mean; 0: no "
        "confirmation",
        min=0,
        metavar="K",
    )
    confirm_max: int = option(
        0,
        "at most N plans confirmed on fresh seeds: the front and the baselines within 2 SE of "
        "it always, then the plans nearest to it; 0: every plan within 2 SE of the front",
        min=0,
        metavar="N",
    )
    learned_plans: int = option(
        0,
        "plans read from a trained plain WRN's kernels, queued right after the baselines: per "
        "depth and width, the plan of least projection error within each of N parameter "
        "budgets (the parents train once, counted in the compute); 0: off",
        min=0,
        metavar="N",
    )
    fidelity: str = option(
        "scratch",
        "where a trial's accuracy comes from: scratch (trained for the recipe's epochs) or "
        "inherit (started from the trained plain WRN of its depth and width, then fine-tuned)",
        choices=FIDELITIES,
        group="fidelity",
    )
    inherit_epochs: int = option(
        2, "inherit: fine-tuning epochs of a trial", min=1, metavar="N", group="fidelity"
    )
    inherit_lr: float = option(
        0.01,
        "inherit: initial fine-tuning learning rate (cosine schedule)",
        gt=0.0,
        metavar="LR",
        group="fidelity",
    )
    workers: int = option(1, "local worker processes", min=1)
    device: str = option("auto", "auto | cpu | cuda | cuda:N", group="runtime")
    precision: str = option(
        "auto",
        "auto: bf16 on CUDA and on CPUs with native bf16, else fp32",
        choices=PRECISIONS,
        group="runtime",
    )
    storage: str | None = option(
        None, "Optuna storage URL (default: a journal file in the study folder)", metavar="URL"
    )
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
        if self.fidelity not in FIDELITIES:
            raise ValueError(
                f"fidelity must be one of {', '.join(FIDELITIES)}, but got fidelity={self.fidelity!r}."
            )
        if not is_number(self.inherit_lr) or self.inherit_lr <= 0:
            raise ValueError(
                f"inherit_lr must be a number > 0, but got inherit_lr={self.inherit_lr!r}."
            )
        object.__setattr__(self, "inherit_lr", float(self.inherit_lr))
        for name, low in (
            ("n_trials", 1),
            ("workers", 1),
            ("seed", 0),
            ("inherit_epochs", 1),
            ("baseline_seeds", 1),
            ("confirm_seeds", 0),
            ("confirm_max", 0),
            ("learned_plans", 0),
        ):
            require_int(name, getattr(self, name), low)
            object.__setattr__(self, name, int(getattr(self, name)))  # numpy ints: JSON-native
        baseline_count(self.baselines, self.n_trials)  # validates the baselines field
        if self.max_params is not None:
            require_int("max_params", self.max_params, 1)
            object.__setattr__(self, "max_params", int(self.max_params))
        if self.format_version not in (1, FORMAT_VERSION):
            raise ValueError(
                f"study format version {self.format_version!r} is not one this code reads "
                f"(1 or {FORMAT_VERSION})."
            )
        for section in SECTIONS:
            if not isinstance(getattr(self, section), dict):
                raise ValueError(f"{section} must be a table of settings, but got {section}=...")
        self._resolve()

    def _resolve(self) -> None:
        """Preset defaults under what was given, once: the typed parts (validated here) and the
        four dicts replaced by every resolved value (what ``study.json`` stores)."""
        preset = PRESETS[self.preset]
        space = SearchSpace.from_dict(preset["space"] | self.space)
        data = DataConfig.from_dict(preset["data"] | self.data)
        if data.val_fraction <= 0:
            raise ValueError(
                "a study selects models on a validation split: val_fraction must be > 0."
            )
        recipe = {
            k: v for k, v in (preset["recipe"] | self.recipe).items() if k not in _RECIPE_TOP
        }
        train = TrainConfig.from_dict(
            recipe | {"seed": self.seed, "device": self.device, "precision": self.precision}
        )
        # max_epochs is the recipe's budget; min_epochs stays None ("a quarter of the budget")
        # unless it was given, so that a changed --epochs moves the first rung with it.
        stop_given = {
            k: v
            for k, v in (preset["early_stopping"] | self.early_stopping).items()
            if k != "max_epochs"
        }
        stop = StopRule(max_epochs=self.trial_epochs(train.epochs), **stop_given)
        stop_stored = asdict(stop) | {"min_epochs": stop_given.get("min_epochs")}
        del stop_stored["max_epochs"]
        for name, value in (
            ("space", space.to_dict()),
            ("data", data.to_dict()),
            ("recipe", {k: v for k, v in train.to_dict().items() if k not in _RECIPE_TOP}),
            ("early_stopping", stop_stored),
            ("format_version", FORMAT_VERSION),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_parts", (space, data, train, stop))

    def search_space(self) -> SearchSpace:
        return self._parts[0]

    def data_config(self) -> DataConfig:
        return self._parts[1]

    def train_config(self, **runtime) -> TrainConfig:
        """The recipe with the study's seed, device and precision; ``runtime`` overrides those."""
        return replace(self._parts[2], **runtime) if runtime else self._parts[2]

    def stop_rule(self) -> StopRule:
        """The stopping rule, its budget a trial's (:meth:`trial_epochs`)."""
        return self._parts[3]

    def trial_epochs(self, recipe_epochs: int | None = None) -> int:
        """The epochs a trial trains: the recipe's from scratch, ``inherit_epochs`` when it
        inherits (the parents train the recipe's)."""
        if self.fidelity == INHERIT:
            return self.inherit_epochs
        return self.train_config().epochs if recipe_epochs is None else recipe_epochs

    def with_flags(self, flags: dict) -> "StudyConfig":
        """This config with command-line values merged in, resolved again.

        ``flags`` maps a top-level field (``n_trials``, ``max_params``, ...) or a section's
        field as ``"data.root"``, ``"recipe.epochs"``, ``"early_stopping.margin"`` to its value;
        ``"space_file"`` names a JSON/TOML file of ranges laid over the current space. Keys it
        does not know are a ValueError naming them."""
        sections = {name: dict(getattr(self, name)) for name in SECTIONS}
        top: dict = {}
        for key, value in flags.items():
            section, _, name = key.partition(".")
            if key == "space_file":
                sections["space"] = load_space(value, self.search_space()).to_dict()
            elif name and section in SECTIONS:
                sections[section][name] = value
            elif not name and key in _FIELD_NAMES and key not in SECTIONS:
                top[key] = value
            else:
                raise ValueError(f"unknown study setting {key!r}")
        if top.get("preset", self.preset) != self.preset:
            raise ValueError("with_flags keeps the preset; start from StudyConfig(preset=...)")
        return replace(self, **sections, **top)

    @classmethod
    def from_flags(
        cls, name: str, flags: dict, saved: "StudyConfig | None" = None
    ) -> "StudyConfig":
        """The config a ``study`` command means: the saved study's (when it has the preset the
        flags ask for, or they ask none) with the flags merged in, else a new one from the
        preset ("smoke" when none is given)."""
        preset = flags.get("preset")
        if saved is not None and preset in (None, saved.preset):
            base = saved
        else:
            base = cls(name=name, preset=preset or "smoke")
        return base.with_flags({k: v for k, v in flags.items() if k != "preset"})

    def to_dict(self) -> dict:
        return asdict(self)

    def stored_dict(self) -> dict:
        """:meth:`to_dict` for what is written anywhere (``study.json``, the study's own
        attributes, which optuna-dashboard shows and every user of a shared database reads):
        the storage URL without its password (:func:`nas.storage.url_without_password`)."""
        from .storage import url_without_password

        data = self.to_dict()
        if data.get("storage"):
            data["storage"] = url_without_password(data["storage"])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "StudyConfig":
        return strict_from_dict(cls, data, "study config")

    def _identity(self) -> dict:
        """What makes the study the study: resolved values, bar runtime fields of the study
        and of its recipe (how fast a trial trains is not what it learns)."""
        view = {k: v for k, v in self.resolved().items() if k not in RUNTIME_FIELDS}
        view["recipe"] = {k: v for k, v in view["recipe"].items() if k not in TRAIN_RUNTIME}
        return view

    def identity_differences(self, other: "StudyConfig") -> list[str]:
        """Fields, other than runtime ones, whose resolved values differ from ``other``'s."""
        mine, theirs = self._identity(), other._identity()
        return sorted(k for k in mine if mine[k] != theirs[k])

    def difference_text(self, saved: "StudyConfig") -> str:
        """Each setting that differs from ``saved``'s, as ``recipe.lr 0.1 -> 0.2`` (saved first)."""
        mine, theirs = self._identity(), saved._identity()
        parts = []
        for key in sorted(k for k in mine if mine[k] != theirs[k]):
            if isinstance(mine[key], dict) and isinstance(theirs[key], dict):
                for sub in sorted(set(mine[key]) | set(theirs[key])):
                    if mine[key].get(sub) != theirs[key].get(sub):
                        parts.append(
                            f"{key}.{sub} {theirs[key].get(sub)!r} -> {mine[key].get(sub)!r}"
                        )
            else:
                parts.append(f"{key} {theirs[key]!r} -> {mine[key]!r}")
        return "; ".join(parts)

    def resolved(self) -> dict:
        """Every field as it runs: :meth:`to_dict`, with the stopping rule's derived budget
        and first rung filled in."""
        return self.to_dict() | {"early_stopping": asdict(self.stop_rule())}


def save_study_config(config: StudyConfig, folder: pathlib.Path) -> StudyConfig:
    """Write ``folder/study.json`` (stamped with its creation time if it has none; a storage
    URL without its password); returns the config, password kept."""
    from softshare.checkpoint import atomic_write_text, dumps

    if not config.created:
        config = replace(
            config,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
    # never a password on disk; the config returned keeps it
    atomic_write_text(folder / STUDY_FILE, dumps(config.stored_dict()))
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


_FIELD_NAMES = frozenset(f.name for f in fields(StudyConfig))
